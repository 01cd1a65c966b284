import Synchronization

/// The client's run state: started once, drained once, finished once with a report, and
/// the continuations waiting for those moments (the shutdown-bound timer, callers of
/// `shutdown()`).
final class Lifecycle: Sendable {
    enum Phase: Equatable {
        case idle, running, draining, finished
    }

    private struct State {
        var phase = Phase.idle
        var drainStarted: ContinuousClock.Instant?
        var drainWaiters: [CheckedContinuation<ContinuousClock.Instant?, Never>] = []
        var drainCancelled = false
        var report: TallyClient.ShutdownReport?
        var reportWaiters: [CheckedContinuation<TallyClient.ShutdownReport, Never>] = []
    }

    private let state = Mutex(State())

    var phase: Phase { state.withLock { $0.phase } }

    /// False when the client already ran.
    func start() -> Bool {
        state.withLock { state in
            guard state.phase == .idle else { return false }
            state.phase = .running
            return true
        }
    }

    /// Marks the start of graceful shutdown; false when it had already begun or ended.
    func beginDrain() -> Bool {
        let (started, waiters) = state.withLock { state -> (ContinuousClock.Instant?, [CheckedContinuation<ContinuousClock.Instant?, Never>]) in
            guard state.phase == .running, state.drainStarted == nil else { return (nil, []) }
            state.phase = .draining
            let now = ContinuousClock.now
            state.drainStarted = now
            defer { state.drainWaiters = [] }
            return (now, state.drainWaiters)
        }
        for waiter in waiters { waiter.resume(returning: started) }
        return started != nil
    }

    /// Suspends until graceful shutdown begins; returns the instant it ends (start + `timeout`),
    /// or nil when the client stopped without a drain.
    func waitForDrain(timeout: Duration) async -> ContinuousClock.Instant? {
        let started = await withCheckedContinuation { (continuation: CheckedContinuation<ContinuousClock.Instant?, Never>) in
            let immediate = state.withLock { state -> ContinuousClock.Instant?? in
                if state.drainCancelled { return .some(nil) }
                if let started = state.drainStarted { return .some(started) }
                state.drainWaiters.append(continuation)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
        return started.map { $0 + timeout }
    }

    /// The client stops without (more) draining: the bound timer is not needed.
    func cancelDrainWait() {
        let waiters = state.withLock { state in
            state.drainCancelled = true
            defer { state.drainWaiters = [] }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }

    func finish(_ report: TallyClient.ShutdownReport) {
        let waiters = state.withLock { state in
            state.phase = .finished
            if state.report == nil { state.report = report }
            defer { state.reportWaiters = [] }
            return state.reportWaiters
        }
        for waiter in waiters { waiter.resume(returning: report) }
    }

    /// The final report, once the client has finished.
    func waitForReport() async -> TallyClient.ShutdownReport {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> TallyClient.ShutdownReport? in
                if let report = state.report { return report }
                state.reportWaiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
