import Synchronization
import TallyLog

/// What came of one request taken for ingest.
public enum IngestOutcome: Sendable, Equatable {
    /// Durable (or durable before: `replayed`). LSNs of the node that first took it; for a
    /// retry found in PostgreSQL they may be another node's.
    case stored(firstLSN: LSN, lastLSN: LSN, replayed: Bool)
    /// The id was taken by a request with other increments: nothing was stored.
    case conflict
    /// The log refused it: nothing was stored.
    case refused(LogError)
}

/// The request ids this node took recently, so that a retry is answered as the first
/// request was (same LSNs, nothing appended) and a reuse of the id with other increments
/// is refused (409), without asking PostgreSQL.
///
/// Bounded: at most `maxEntries` ids, and each for at most `retention`; an id that falls out
/// is still counted once (the checkpoint's `tally_requests` row decides), and a retry of it
/// is then looked up in PostgreSQL. After a restart the window is rebuilt from the log's
/// request entries since the checkpoint (`remember`).
public final class RequestWindow: Sendable {
    private enum Entry {
        case inFlight(digest: UInt64, waiters: [@Sendable (IngestOutcome) -> Void])
        case done(digest: UInt64, firstLSN: LSN, lastLSN: LSN, atMillis: Int64)
    }

    private struct State {
        var entries: [[UInt8]: Entry] = [:]
        /// Ids in the order they were added, for eviction, from `orderStart` on (an id whose
        /// entry was dropped may still be listed; it is skipped).
        var order: [[UInt8]] = []
        var orderStart = 0
    }

    /// How the caller goes on with a request.
    public enum Admission: Sendable, Equatable {
        /// Unknown here: append it (after asking PostgreSQL, if it can).
        case fresh
        /// Known: answer with this outcome, append nothing.
        case answered(IngestOutcome)
        /// The same request is in flight: the waiter will be called with its outcome.
        case waiting
    }

    public let retentionMillis: Int64
    public let maxEntries: Int
    private let clock: @Sendable () -> Int64
    private let state = Mutex(State())

    public init(retention: Duration = .seconds(24 * 3600), maxEntries: Int = 200_000,
                clock: @escaping @Sendable () -> Int64 = RequestWindow.nowMillis) {
        precondition(maxEntries >= 1, "the window holds at least one id")
        retentionMillis = retention.components.seconds * 1_000
        self.maxEntries = maxEntries
        self.clock = clock
    }

    public var count: Int { state.withLock { $0.entries.count } }

    /// Looks `tag` up and, when it is fresh, marks it in flight (so that a concurrent retry
    /// waits for its outcome instead of appending twice).
    public func admit(_ tag: RequestTag, waiter: @escaping @Sendable (IngestOutcome) -> Void) -> Admission {
        let now = clock()
        return state.withLock { state in
            switch state.entries[tag.id] {
            case .inFlight(let digest, var waiters)?:
                guard digest == tag.digest else { return .answered(.conflict) }
                waiters.append(waiter)
                state.entries[tag.id] = .inFlight(digest: digest, waiters: waiters)
                return .waiting
            case .done(let digest, let first, let last, let at)? where now - at <= retentionMillis:
                return .answered(digest == tag.digest ? .stored(firstLSN: first, lastLSN: last, replayed: true) : .conflict)
            default:
                state.entries[tag.id] = .inFlight(digest: tag.digest, waiters: [])
                state.order.append(tag.id)
                Self.evict(&state, keeping: maxEntries)
                return .fresh
            }
        }
    }

    /// Ends an in-flight request: remembered when stored, forgotten when refused (a retry
    /// may then succeed). Calls the waiters with the outcome, as a replay when stored.
    public func finish(_ tag: RequestTag, with outcome: IngestOutcome) {
        let now = clock()
        let waiters = state.withLock { state -> [@Sendable (IngestOutcome) -> Void] in
            guard case .inFlight(_, let waiters)? = state.entries[tag.id] else { return [] }
            switch outcome {
            case .stored(let first, let last, _):
                state.entries[tag.id] = .done(digest: tag.digest, firstLSN: first, lastLSN: last, atMillis: now)
            case .conflict, .refused:
                state.entries[tag.id] = nil
            }
            return waiters
        }
        let forWaiters: IngestOutcome = if case .stored(let first, let last, _) = outcome {
            .stored(firstLSN: first, lastLSN: last, replayed: true)
        } else {
            outcome
        }
        for waiter in waiters { waiter(forWaiters) }
    }

    /// A request the log holds (seen live or on replay): remembered unless already known.
    public func remember(_ entry: RequestEntry) {
        let now = clock()
        state.withLock { state in
            guard state.entries[entry.tag.id] == nil else { return }
            state.entries[entry.tag.id] = .done(digest: entry.tag.digest, firstLSN: entry.firstLSN,
                                                lastLSN: entry.lastLSN, atMillis: now)
            state.order.append(entry.tag.id)
            Self.evict(&state, keeping: maxEntries)
        }
    }

    /// Drops the oldest finished ids beyond `limit` (in-flight ones stay: their requests
    /// are bounded by the log's queue), and keeps the order list within twice the entries.
    private static func evict(_ state: inout State, keeping limit: Int) {
        var scanned = 0
        let end = state.order.count
        while state.entries.count > limit, state.orderStart < end, scanned < end {
            let oldest = state.order[state.orderStart]
            state.orderStart += 1
            scanned += 1
            switch state.entries[oldest] {
            case .done?: state.entries[oldest] = nil
            case .inFlight?: state.order.append(oldest)
            case nil: break
            }
        }
        if state.order.count - state.orderStart > 2 * max(limit, state.entries.count) || state.orderStart > state.order.count / 2 {
            state.order = state.order[state.orderStart...].filter { state.entries[$0] != nil }
            state.orderStart = 0
        }
    }

    @Sendable public static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

#if canImport(Glibc)
import Glibc
#endif
