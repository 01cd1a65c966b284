#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization

/// Registers key names with the daemon once per process (`PUT /keys/{key}`), in the
/// background: the caller gets the key at once, and the name reaches `tally_key_names` when
/// the daemon is reachable (retried with the client's backoff; a refusal is logged once).
/// Bounded: at most `maxPending` names wait and at most `maxKnownNames` are remembered; past
/// either, a name's key is still returned but the name is not registered (one warning each).
/// While the client drains, each waiting name gets one attempt: names are not worth holding a
/// shutdown for (the next process registers them again).
final class NameRegistry: Sendable {
    /// Names are meant to be few (routes, methods, counters a program names in its code);
    /// a program that makes a name per user id would otherwise grow this table forever.
    static let maxKnownNames = 100_000

    private struct State {
        var known: [String: UUID] = [:]
        var pending: [(name: String, key: UUID)] = []
        var waiter: CheckedContinuation<Bool, Never>?
        var draining = false
        var warnedFull = false
        var warnedKnownFull = false
    }

    private let transport: HTTPTransport
    private let maxPending: Int
    private let logger: Logger
    private let state = Mutex(State())
    static let requestTimeout = Duration.seconds(5)

    init(transport: HTTPTransport, maxPending: Int, logger: Logger) {
        self.transport = transport
        self.maxPending = maxPending
        self.logger = logger
    }

    func register(_ name: String) -> UUID {
        let (key, wake, problem) = state.withLock { state -> (UUID, CheckedContinuation<Bool, Never>?, String?) in
            if let key = state.known[name] { return (key, nil, nil) }
            let key = TallyKeyName.key(for: name)
            guard state.known.count < Self.maxKnownNames else {
                let first = !state.warnedKnownFull
                state.warnedKnownFull = true
                return (key, nil, first ? "more than \(Self.maxKnownNames) distinct names in this process" : nil)
            }
            if let problem = TallyKeyName.problem(with: name) {
                state.known[name] = key
                return (key, nil, problem)
            }
            guard state.pending.count < maxPending else {
                let first = !state.warnedFull
                state.warnedFull = true
                return (key, nil, first ? "more than \(maxPending) names wait to be registered" : nil)
            }
            state.known[name] = key
            state.pending.append((name, key))
            defer { state.waiter = nil }
            return (key, state.waiter, nil)
        }
        wake?.resume(returning: true)
        if let problem { logger.warning("key name not registered", metadata: ["name": "\(name.prefix(80))", "reason": "\(problem)"]) }
        return key
    }

    /// Registers pending names until the client drains and none is left (or it is cancelled).
    func run(backoff: Backoff) async {
        var generator = SystemRandomNumberGenerator()
        while !Task.isCancelled, let next = await nextName() {
            var attempt = 0
            while !Task.isCancelled {
                let outcome: DeliveryOutcome
                do {
                    outcome = try await transport.register(name: next.name, key: next.key, timeout: Self.requestTimeout)
                } catch {
                    outcome = .retry(reason: "\(error)", after: nil)
                }
                if case .retry(let reason, let after) = outcome {
                    if state.withLock({ $0.draining }) {
                        logger.notice("key name not registered before shutdown", metadata: ["name": "\(next.name.prefix(80))", "reason": "\(reason)"])
                        break
                    }
                    attempt += 1
                    do { try await Task.sleep(for: backoff.delay(attempt: attempt, atLeast: after, using: &generator)) } catch { return }
                    continue
                }
                if case .refused(let reason) = outcome {
                    logger.warning("the daemon refused a key name", metadata: ["name": "\(next.name)", "reason": "\(reason)"])
                }
                break
            }
        }
    }

    /// No more waiting for names: the worker ends once the pending ones are sent.
    func drain() {
        let waiter = state.withLock { state in
            state.draining = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: false)
    }

    func shutdown() async {
        await transport.shutdown()
    }

    private func nextName() async -> (name: String, key: UUID)? {
        while true {
            let (next, done): ((String, UUID)?, Bool) = state.withLock { state in
                if !state.pending.isEmpty { return (state.pending.removeFirst(), false) }
                return (nil, state.draining)
            }
            if let next { return next }
            if done || Task.isCancelled { return nil }
            let more = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    let ready = state.withLock { state -> Bool? in
                        if !state.pending.isEmpty { return true }
                        if state.draining { return false }
                        state.waiter = continuation
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                drain()
            }
            if !more && state.withLock({ $0.pending.isEmpty }) { return nil }
        }
    }
}
