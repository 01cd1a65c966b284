import TallyCore
import TallyIngest
import TallyLog

#if canImport(Glibc)
import Glibc
#endif

/// The checks an ingest request (`POST /increment`, `POST /increments`) passes before the
/// log sees it, and the answer to each outcome, shared by the Hummingbird route and the
/// event-loop fast path so that both accept, refuse and answer exactly the same requests.
struct IncrementIntake: Sendable {
    enum Outcome {
        /// Valid: submit these records, with the request's tag if it has an idempotency key.
        case submit([LogRecord], RequestTag?)
        /// Invalid: answer this and store nothing.
        case refuse(Answer)
    }

    /// Body limit of `POST /increment`.
    let maxBodyBytes: Int
    /// Body and line limits of `POST /increments`.
    let maxBatchBytes: Int
    let maxBatchIncrements: Int
    /// The arrival time stamped on each record (ms since the epoch, UTC): the day it is
    /// counted under. Injected by tests to place increments around midnight.
    let clock: @Sendable () -> Int64

    init(maxBodyBytes: Int, maxBatchBytes: Int = 1 << 20, maxBatchIncrements: Int = 10_000,
         clock: @escaping @Sendable () -> Int64 = IncrementIntake.nowMillis) {
        self.maxBodyBytes = maxBodyBytes
        self.maxBatchBytes = maxBatchBytes
        self.maxBatchIncrements = maxBatchIncrements
        self.clock = clock
    }

    /// The route of an ingest request, from its method and URI (nil: not an ingest request).
    static func kind(method: String, uri: String) -> TakenRequest.Kind? {
        guard method == "POST" else { return nil }
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        switch path {
        case "/increment": return .single
        case "/increments": return .bulk
        default: return nil
        }
    }

    func maxBytes(for kind: TakenRequest.Kind) -> Int {
        kind == .single ? maxBodyBytes : maxBatchBytes
    }

    /// A declared `Content-Length` over the limit is refused before any body byte is read.
    func refusesDeclaredLength(_ contentLength: String?, kind: TakenRequest.Kind) -> Answer? {
        guard let declared = contentLength.flatMap(Int.init), declared > maxBytes(for: kind) else { return nil }
        return .bodyTooLarge(maxBodyBytes: maxBytes(for: kind))
    }

    /// An `Idempotency-Key` header that is present must be 1…64 printable ASCII characters.
    func refusesIdempotencyKey(_ key: String?) -> Answer? {
        guard let key, !RequestTag.isValid(key.utf8) else { return nil }
        return .error(.badRequest, "\"Idempotency-Key\" must be 1 to 64 printable ASCII characters")
    }

    /// Parses a complete body strictly into the records to append.
    func outcome(kind: TakenRequest.Kind, body: UnsafeRawBufferPointer, idempotencyKey: String?) -> Outcome {
        guard body.count <= maxBytes(for: kind) else { return .refuse(.bodyTooLarge(maxBodyBytes: maxBytes(for: kind))) }
        if let refusal = refusesIdempotencyKey(idempotencyKey) { return .refuse(refusal) }
        let now = clock()
        let records: [LogRecord]
        switch kind {
        case .single:
            switch IncrementParser.parse(body) {
            case .success(let increment):
                records = [LogRecord(key: increment.key, value: increment.value, arrivalMillis: now)]
            case .failure(let rejection):
                return .refuse(.error(.badRequest, rejection.message))
            }
        case .bulk:
            switch BulkParser.parse(body, maxIncrements: maxBatchIncrements) {
            case .success(let increments):
                records = increments.map { LogRecord(key: $0.key, value: $0.value, arrivalMillis: now) }
            case .failure(.line(let line, let message)):
                return .refuse(.badLine(line, message))
            case .failure(let rejection):
                return .refuse(rejection == .empty ? .error(.badRequest, rejection.description)
                                                   : .error(.contentTooLarge, rejection.description))
            }
        }
        let tag = idempotencyKey.flatMap { RequestTag(id: $0, digest: RequestDigest.of(records)) }
        return .submit(records, tag)
    }

    /// The answer to what ingest made of a request.
    func answer(_ outcome: IngestOutcome, kind: TakenRequest.Kind) -> Answer {
        switch outcome {
        case .stored(let first, let last, let replayed):
            var answer: Answer = kind == .single ? .acknowledged(lsn: last)
                : .acknowledgedBulk(count: Int(last - first + 1), firstLSN: first, lastLSN: last)
            if replayed { answer.headers[.idempotentReplayed] = "true" }
            return answer
        case .conflict:
            return .error(.conflict, "this Idempotency-Key was already used for a request with other increments; "
                + "nothing was stored (use a new key for a new request)")
        case .refused(let error):
            return .notStored(error)
        }
    }

    @Sendable static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
