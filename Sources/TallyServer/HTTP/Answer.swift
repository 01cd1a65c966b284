import HTTPTypes
import TallyIngest
import TallyLog

/// One answer of the API — status, JSON body, extra headers — as a plain value, so that the
/// Hummingbird routes and the event-loop fast path for ingest answer the same request with
/// the same bytes.
struct Answer: Sendable {
    var status: HTTPResponse.Status
    var body: String
    var headers: HTTPFields = [:]

    static func error(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) -> Answer {
        Answer(status: status, body: ResponseBody.error(message), headers: headers)
    }

    /// 429/503 tell the client when to come back.
    static func retryLater(_ status: HTTPResponse.Status, _ message: String, afterSeconds seconds: Int) -> Answer {
        error(status, message, headers: [.retryAfter: String(max(1, seconds))])
    }

    static func acknowledged(lsn: LSN) -> Answer {
        Answer(status: .ok, body: ResponseBody.acknowledged(lsn: lsn))
    }

    static func acknowledgedBulk(count: Int, firstLSN: LSN, lastLSN: LSN) -> Answer {
        Answer(status: .ok, body: #"{"count":\#(count),"first_lsn":\#(firstLSN),"last_lsn":\#(lastLSN)}"#)
    }

    /// A bulk body's first bad line, by its 1-based number.
    static func badLine(_ line: Int, _ message: String) -> Answer {
        Answer(status: .badRequest,
               body: #"{"error":\#(JSONText.string("line \(line): " + message)),"line":\#(line)}"#)
    }

    static func refusal(_ refusal: RequestGate.Refusal) -> Answer {
        switch refusal {
        case .unauthorized: .unauthorized
        case .rateLimited(let seconds): .rateLimited(retryAfterSeconds: seconds)
        }
    }

    static func bodyTooLarge(maxBodyBytes: Int) -> Answer {
        error(.contentTooLarge, "the body is larger than \(maxBodyBytes) bytes")
    }

    static let unauthorized = error(.unauthorized, "a valid API key is required: Authorization: Bearer <key>",
                                    headers: [.wwwAuthenticate: "Bearer"])

    static func rateLimited(retryAfterSeconds seconds: Int) -> Answer {
        retryLater(.tooManyRequests, "rate limit exceeded; retry after \(seconds) s", afterSeconds: seconds)
    }

    /// The log refused the increment: nothing was stored; say why and when to retry.
    static func notStored(_ error: LogError) -> Answer {
        switch error {
        case .full:
            retryLater(.serviceUnavailable, "the increment was not stored: the log is over its disk budget "
                + "while PostgreSQL catches up", afterSeconds: 5)
        case .overloaded:
            retryLater(.serviceUnavailable, "the increment was not stored: too many increments are waiting", afterSeconds: 1)
        case .appendsHeld(let reason):
            retryLater(.serviceUnavailable, "the increment was not stored: this node takes no writes now (\(reason))",
                       afterSeconds: 5)
        case .diskFull:
            retryLater(.serviceUnavailable, "the increment was not stored: the disk is full; "
                + "writes resume by themselves when space returns", afterSeconds: 5)
        case .stopped, .closed:
            retryLater(.serviceUnavailable, "the increment was not stored: the log accepts no writes (\(error))", afterSeconds: 5)
        default:
            retryLater(.serviceUnavailable, "the increment was not stored: \(error)", afterSeconds: 1)
        }
    }
}

extension HTTPField.Name {
    /// Set on the answer to a retry: the request was stored before, this answer repeats it.
    static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
