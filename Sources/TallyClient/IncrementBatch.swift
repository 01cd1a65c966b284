#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One line of a batch: a key and the sum of the increments queued for it.
public struct IncrementLine: Sendable, Hashable {
    public var key: UUID
    public var value: Int64

    public init(key: UUID, value: Int64) {
        self.key = key
        self.value = value
    }
}

/// A sealed batch: what one bulk request carries, with the idempotency id that every attempt
/// to send it repeats. A batch never changes once sealed, so a retry is the same request and
/// the daemon counts it once (`Idempotency-Key`, `request_id`).
public struct IncrementBatch: Sendable, Equatable {
    /// `<client id>-<sequence>`: unique per client instance, at most 64 printable ASCII.
    public let id: String
    public let lines: [IncrementLine]
    /// How many `increment(key:by:)` calls the lines sum up.
    public let calls: Int

    public init(id: String, lines: [IncrementLine], calls: Int) {
        self.id = id
        self.lines = lines
        self.calls = calls
    }
}

/// What one attempt to deliver a batch came to.
public enum DeliveryOutcome: Sendable, Equatable {
    /// The daemon has it durably (a first answer or a replayed one).
    case delivered
    /// Not taken now (503, 429, a 5xx, a reset, a timeout): send the same batch again, not
    /// before `after` when the daemon said (`Retry-After`).
    case retry(reason: String, after: Duration?)
    /// Refused for good (400, 401, 409, 413): sending it again cannot help.
    case refused(reason: String)
}

/// How batches reach the daemon. ``HTTPTransport`` is the default; `TallyClientGRPC` offers
/// the gRPC stream. A transport must send a batch as one all-or-nothing request carrying
/// `batch.id` as its idempotency id, and must return soon after its task is cancelled: the
/// shutdown bound cancels the sends still in flight.
public protocol TallyTransport: Sendable {
    /// Sends one batch once. Thrown errors count as ``DeliveryOutcome/retry(reason:after:)``.
    func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome
    /// Closes connections; called once, after the last send.
    func shutdown() async
}
