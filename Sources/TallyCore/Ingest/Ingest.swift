import Foundation
import TallyLog

/// A request id as PostgreSQL records it (`tally_requests`): counted once, by `node`.
public struct StoredRequest: Sendable, Equatable {
    public var node: UUID
    public var firstLSN: LSN
    public var count: Int
    public var digest: UInt64

    public init(node: UUID, firstLSN: LSN, count: Int, digest: UInt64) {
        self.node = node
        self.firstLSN = firstLSN
        self.count = count
        self.digest = digest
    }
}

/// Where ids older than this node's window, or taken by other nodes, are found.
public protocol RequestLookup: Sendable {
    func storedRequest(id: String) async throws -> StoredRequest?
}

/// Takes requests for the log, the same for every front (HTTP, gRPC): plain ones go
/// straight to the log; a tagged one (an idempotency key) is first looked up in this
/// node's `RequestWindow`, then in PostgreSQL (`RequestLookup`), and appended with its tag
/// only when nobody knows it.
///
/// Counting once does not depend on the lookups: the tag goes into the log with the
/// records, and the checkpoint counts a request only when it is the one that records the
/// id in `tally_requests`. The lookups make the answer right: a retry gets the first
/// request's LSNs (on the node that took it, or from PostgreSQL once checkpointed), and an
/// id reused with other increments gets `.conflict`. When PostgreSQL cannot be asked the
/// request is appended and the checkpoint decides.
public final class Ingest: Sendable {
    public let log: Log
    public let window: RequestWindow
    private let lookup: (any RequestLookup)?

    public init(log: Log, window: RequestWindow, lookup: (any RequestLookup)?) {
        self.log = log
        self.window = window
        self.lookup = lookup
    }

    /// Takes `records` as one request. `completion` runs once, on whichever thread
    /// resolved it (the log's writer, a lookup task, or the caller's when refused at once):
    /// it must be quick and must not block.
    public func submit(_ records: [LogRecord], tag: RequestTag?,
                       completion: @escaping @Sendable (IngestOutcome) -> Void) {
        guard let tag else { return append(records, tag: nil, completion: completion) }
        switch window.admit(tag, waiter: completion) {
        case .answered(let outcome):
            completion(outcome)
        case .waiting:
            break
        case .fresh:
            guard let lookup else { return appendTagged(records, tag: tag, completion: completion) }
            Task {
                let stored = try? await lookup.storedRequest(id: tag.idString)
                if let stored {
                    let outcome: IngestOutcome = stored.digest == tag.digest
                        ? .stored(firstLSN: stored.firstLSN, lastLSN: stored.firstLSN + LSN(stored.count) - 1, replayed: true)
                        : .conflict
                    window.finish(tag, with: outcome)
                    completion(outcome)
                } else {
                    appendTagged(records, tag: tag, completion: completion)
                }
            }
        }
    }

    /// `submit` for async callers.
    public func submit(_ records: [LogRecord], tag: RequestTag?) async -> IngestOutcome {
        await withCheckedContinuation { continuation in
            submit(records, tag: tag) { continuation.resume(returning: $0) }
        }
    }

    private func appendTagged(_ records: [LogRecord], tag: RequestTag, completion: @escaping @Sendable (IngestOutcome) -> Void) {
        append(records, tag: tag) { [window] outcome in
            window.finish(tag, with: outcome)
            completion(outcome)
        }
    }

    private func append(_ records: [LogRecord], tag: RequestTag?, completion: @escaping @Sendable (IngestOutcome) -> Void) {
        let count = LSN(records.count)
        log.append(Append(records: records, tag: tag)) { result in
            switch result {
            case .success(let last): completion(.stored(firstLSN: last - count + 1, lastLSN: last, replayed: false))
            case .failure(let error): completion(.refused(error))
            }
        }
    }
}
