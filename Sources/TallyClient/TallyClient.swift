#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import ServiceLifecycle
import Synchronization
@_exported import TallyKeyNames

/// A client that counts into Tally without ever making its caller wait for the network.
///
/// ``increment(key:by:)`` puts the increment into a bounded in-memory queue and returns; it
/// never blocks a thread (under ``TallyClientConfiguration/WhenFull/wait`` a caller of a full
/// queue suspends until there is room). Increments to the same key merge into one line; lines
/// are sealed into batches by count (``TallyClientConfiguration/maxBatchLines``) and by time
/// (``TallyClientConfiguration/flushIntervalSeconds``) and sent as one all-or-nothing bulk
/// request each (`POST /increments`, or the gRPC stream with `TallyClientGRPC`).
///
/// Every batch carries an idempotency id that all its attempts repeat, so a retry after a
/// timeout, a reset or a 503 is counted once by the daemon, even across its crash and
/// restart. Retries back off exponentially with full jitter, capped. A batch is delivered
/// when the daemon answers that it is durable; refused for good (400, 401, 409, 413) it is
/// counted as failed and logged.
///
/// The client is a ServiceLifecycle `Service`: run it in the application's `ServiceGroup`
/// (or in a task of its own), and on graceful shutdown it stops taking increments, sends what
/// is queued for at most ``TallyClientConfiguration/shutdownTimeoutSeconds`` and reports what
/// it could not deliver (``ShutdownReport``, also logged).
///
/// ```swift
/// let tally = try TallyClient(configuration: .init(url: "http://127.0.0.1:8080"))
/// let group = ServiceGroup(services: [tally, app], gracefulShutdownSignals: [.sigterm], logger: logger)
/// await tally.increment(key: TallyKeyName.key(for: "signups"), by: 1)
/// ```
public final class TallyClient: Service, Sendable {
    public let configuration: TallyClientConfiguration
    /// Where batches go; names always go over HTTP (`names`).
    private let transport: any TallyTransport
    private let names: NameRegistry
    private let state: Mutex<IncrementQueue>
    private let lifecycle = Lifecycle()
    private let published = Mutex(Statistics())
    private let metrics: ClientMetrics
    private let backoff: Backoff
    private let nextWaiterID = Atomic<UInt64>(0)
    /// Whether the last attempt failed, so that an outage is logged once, not per retry.
    private let failing = Atomic(false)
    private let logger: Logger

    /// - Parameters:
    ///   - transport: how batches travel; nil for HTTP to `configuration.url` (async-http-client).
    /// - Throws: ``TallyClientError/invalidConfiguration(_:)``.
    public init(configuration: TallyClientConfiguration, transport: (any TallyTransport)? = nil,
                logger: Logger = Logger(label: "tally.client")) throws {
        if let problem = configuration.problem { throw TallyClientError.invalidConfiguration(problem) }
        let http = try HTTPTransport(url: configuration.url, apiKey: configuration.apiKey)
        self.configuration = configuration
        self.transport = transport ?? http
        names = NameRegistry(transport: http, maxPending: configuration.maxPendingNames, logger: logger)
        // The whole UUID: batch ids must not collide across clients within the daemons'
        // 24 h idempotency window ("tc-" + 36 + "-" + sequence stays within 64 characters).
        let clientID = UUID().uuidString.lowercased()
        state = Mutex(IncrementQueue(capacityLines: configuration.capacityLines, maxBatchLines: configuration.maxBatchLines,
                                     whenFull: configuration.whenFull, clientID: "tc-\(clientID)"))
        metrics = ClientMetrics(label: configuration.metricsLabel)
        backoff = Backoff(baseSeconds: configuration.retryBaseDelaySeconds, maxSeconds: configuration.retryMaxDelaySeconds)
        self.logger = logger
    }

    // MARK: Counting

    /// Adds `value` to the counter `key`. Returns as soon as the increment is queued (or
    /// refused); the network is never on the caller's path. Under `.wait` a caller of a full
    /// queue suspends until a batch is delivered and makes room.
    @discardableResult
    public func increment(key: UUID, by value: Int64 = 1) async -> IncrementResult {
        var wakeups = IncrementQueue.Wakeups()
        let admission = state.withLock { $0.enqueue(key: key, value: value, wakeups: &wakeups) }
        if !wakeups.isEmpty { wakeups.resume() }
        switch admission {
        case .queued: return .queued
        case .invalid: return .invalid
        case .dropped:
            metrics.dropped.increment()
            return .dropped
        case .closed:
            metrics.dropped.increment()
            return .closed
        case .mustWait:
            return await waitForRoom(key: key, value: value)
        }
    }

    /// The key of `name` (``TallyKeyName/key(for:)``), registered with the daemon once per
    /// process (`PUT /keys/{key}`) so that reports show the name. Registration happens in the
    /// background while ``run()`` runs, retried until it succeeds.
    @discardableResult
    public func register(name: String) -> UUID {
        names.register(name)
    }

    /// The client's running totals.
    public var statistics: Statistics {
        state.withLock { queue in
            var statistics = queue.statistics
            statistics.queuedLines = queue.heldLines
            return statistics
        }
    }

    private func waitForRoom(key: UUID, value: Int64) async -> IncrementResult {
        let id = nextWaiterID.add(1, ordering: .relaxed).newValue
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<IncrementResult, Never>) in
                var wakeups = IncrementQueue.Wakeups()
                let waiter = IncrementQueue.Waiter(id: id, key: key, value: value, continuation: continuation)
                let immediate = state.withLock { $0.park(waiter, isCancelled: Task.isCancelled, wakeups: &wakeups) }
                wakeups.resume()
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.cancelWaiter(id: id) }?.resume(returning: .cancelled)
        }
        if result != .queued { metrics.dropped.increment() }
        return result
    }

    // MARK: Running

    /// Sends batches until graceful shutdown (or cancellation), then drains: see the type's
    /// documentation. Runs once per client; called after ``shutdown()`` it returns at once.
    public func run() async throws {
        guard lifecycle.start() else {
            if lifecycle.phase == .running { throw TallyClientError.alreadyRunning }
            _ = await lifecycle.waitForReport()  // shutdown() ran the drain itself
            return
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await runUntilDrained()
            } onGracefulShutdown: {
                self.beginShutdown()
            }
        } onCancel: {
            self.stopNow()
        }
        await close()
    }

    /// Starts graceful shutdown (as SIGTERM through a ServiceGroup does) and waits until
    /// what was queued is delivered, or the bound has passed. When ``run()`` has not started,
    /// this call does its work: it sends what is queued within the same bound.
    public func shutdown() async -> ShutdownReport {
        if lifecycle.start() {
            beginShutdown()
            await withTaskCancellationHandler {
                await runUntilDrained()
            } onCancel: {
                self.stopNow()
            }
            return await close()
        }
        beginShutdown()
        return await lifecycle.waitForReport()
    }

    /// After the senders ended: closes the transports, logs and publishes the report.
    @discardableResult
    private func close() async -> ShutdownReport {
        await transport.shutdown()
        await names.shutdown()
        let report = finish()
        if report.isComplete {
            logger.debug("tally client stopped; everything delivered", metadata: ["sent": "\(report.statistics.sent)"])
        } else {
            logger.error("tally client stopped with increments not delivered", metadata: [
                "undelivered_increments": "\(report.undeliveredCalls)", "batches": "\(report.undelivered.count)",
                "batch_ids": "\(report.undelivered.prefix(10).map(\.id))",
            ])
        }
        return report
    }

    private func runUntilDrained() async {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { senders in
                    for _ in 0..<self.configuration.maxConcurrentRequests { senders.addTask { await self.work() } }
                    senders.addTask {
                        // The timer until the drain begins (which seals the open batch itself).
                        await withTaskGroup(of: Void.self) { timer in
                            timer.addTask { await self.flushOnTime() }
                            timer.addTask { _ = await self.lifecycle.waitForDrain(timeout: .zero) }
                            await timer.next()
                            timer.cancelAll()
                        }
                    }
                    senders.addTask { await self.names.run(backoff: self.backoff) }
                }
                return true
            }
            group.addTask {
                // The shutdown bound: from the start of the drain, at most shutdownTimeoutSeconds.
                guard let deadline = await self.lifecycle.waitForDrain(
                    timeout: .seconds(double: self.configuration.shutdownTimeoutSeconds)) else { return false }
                try? await Task.sleep(until: deadline)
                return false
            }
            let drained = await group.next() ?? true
            if !drained { stopNow() }
            group.cancelAll()
        }
    }

    /// One sender: takes batches and delivers each, retrying, until the queue ends.
    private func work() async {
        while let batch = await nextBatch() {
            let completion = await deliver(batch)
            var wakeups = IncrementQueue.Wakeups()
            state.withLock { $0.complete(batch, completion, wakeups: &wakeups) }
            wakeups.resume()
            publishMetrics()
        }
    }

    private func nextBatch() async -> IncrementBatch? {
        if Task.isCancelled { return nil }
        return await withCheckedContinuation { (continuation: CheckedContinuation<IncrementBatch?, Never>) in
            switch state.withLock({ $0.take(parking: continuation) }) {
            case .batch(let batch): continuation.resume(returning: batch)
            case .finished: continuation.resume(returning: nil)
            case .parked: break
            }
        }
    }

    /// Sends `batch` until it is delivered, refused for good, or the client stops.
    private func deliver(_ batch: IncrementBatch) async -> IncrementQueue.Completion {
        var attempt = 0
        var generator = SystemRandomNumberGenerator()
        let timeout = Duration.seconds(double: configuration.requestTimeoutSeconds)
        while true {
            let outcome: DeliveryOutcome
            do {
                outcome = try await transport.send(batch, timeout: timeout)
            } catch {
                outcome = .retry(reason: "\(error)", after: nil)
            }
            switch outcome {
            case .delivered:
                if failing.exchange(false, ordering: .relaxed) {
                    logger.notice("tally daemon reachable again", metadata: ["url": "\(configuration.url)"])
                }
                return .delivered
            case .refused(let reason):
                logger.error("tally refused a batch for good; its increments are not counted", metadata: [
                    "batch_id": "\(batch.id)", "increments": "\(batch.calls)", "reason": "\(reason)",
                ])
                return .failed
            case .retry(let reason, let after):
                if Task.isCancelled { return .undelivered }
                attempt += 1
                state.withLock { $0.recordRetry() }
                publishMetrics()
                if !failing.exchange(true, ordering: .relaxed) {
                    logger.warning("tally daemon not taking increments; retrying with backoff", metadata: [
                        "url": "\(configuration.url)", "reason": "\(reason)",
                    ])
                }
                do {
                    try await Task.sleep(for: backoff.delay(attempt: attempt, atLeast: after, using: &generator))
                } catch {
                    return .undelivered
                }
            }
        }
    }

    /// Seals the open batch once its first line has waited `flushIntervalSeconds`.
    private func flushOnTime() async {
        let interval = Duration.seconds(double: configuration.flushIntervalSeconds)
        while !Task.isCancelled {
            let opened = await withCheckedContinuation { (continuation: CheckedContinuation<ContinuousClock.Instant?, Never>) in
                if let ready = state.withLock({ $0.openedAt(parking: continuation) }) { continuation.resume(returning: ready) }
            }
            guard let opened else { return }
            do { try await Task.sleep(until: opened + interval) } catch { return }
            var wakeups = IncrementQueue.Wakeups()
            state.withLock { $0.sealIfOpen(since: opened, wakeups: &wakeups) }
            wakeups.resume()
            publishMetrics()
        }
    }

    private func beginShutdown() {
        guard lifecycle.beginDrain() else { return }
        var wakeups = IncrementQueue.Wakeups()
        state.withLock { $0.drain(wakeups: &wakeups) }
        wakeups.resume()
        names.drain()
    }

    private func stopNow() {
        lifecycle.cancelDrainWait()
        var wakeups = IncrementQueue.Wakeups()
        state.withLock { $0.stop(wakeups: &wakeups) }
        wakeups.resume()
        names.drain()
    }

    /// The report, once: published to waiters of ``shutdown()``.
    private func finish() -> ShutdownReport {
        let report = state.withLock { ShutdownReport(undelivered: $0.undelivered, statistics: $0.statistics) }
        publishMetrics()
        lifecycle.finish(report)
        return report
    }

    private func publishMetrics() {
        published.withLock { previous in
            let (now, held) = state.withLock { ($0.statistics, $0.heldLines) }
            metrics.publish(now, since: previous, heldLines: held)
            previous = now
        }
    }
}

public enum TallyClientError: Error, CustomStringConvertible, Sendable {
    case invalidConfiguration(String)
    case alreadyRunning
    /// A transport was used after its shutdown.
    case shutDown

    public var description: String {
        switch self {
        case .invalidConfiguration(let problem): "invalid Tally client configuration: \(problem)"
        case .alreadyRunning: "TallyClient.run() runs once per client"
        case .shutDown: "the Tally client is shut down"
        }
    }
}
