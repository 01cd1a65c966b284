import GRPCCore
import TallyCore
import TallyIngest
import TallyLog

/// Tally's refusals in gRPC's terms, the same cases as the HTTP API's status codes.
enum RPCStatus {
    static func refusal(_ refusal: RequestGate.Refusal) -> RPCError {
        switch refusal {
        case .unauthorized:
            RPCError(code: .unauthenticated, message: "a valid API key is required: metadata authorization: Bearer <key>")
        case .rateLimited(let seconds):
            RPCError(code: .resourceExhausted, message: "rate limit exceeded; retry after \(seconds) s")
        }
    }

    /// A request ingest did not store: nothing of it was stored.
    static func notStored(_ outcome: IngestOutcome, index: Int) -> RPCError? {
        switch outcome {
        case .stored:
            nil
        case .conflict:
            RPCError(code: .alreadyExists, message: "request \(index) of the stream: its request_id was already used "
                + "for a request with other increments; nothing of it was stored")
        case .refused(let error):
            RPCError(code: .unavailable, message: "request \(index) of the stream was not stored: \(error)")
        }
    }

    /// A read that could not be answered exactly now (PostgreSQL away, the node still
    /// reading its log): never a guess.
    static func unavailable(_ error: any Error) -> RPCError {
        RPCError(code: .unavailable, message: "cannot read counts now: \(error)")
    }
}
