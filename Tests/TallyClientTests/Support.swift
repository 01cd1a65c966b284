import Foundation
import Synchronization
@testable import TallyClient

/// A transport that records every attempt and answers from a script: the first answers as
/// given, then `.delivered`. Lets tests see ids across retries without a socket.
final class ScriptedTransport: TallyTransport {
    private let script: Mutex<[DeliveryOutcome]>
    private let attempts = Mutex<[IncrementBatch]>([])
    /// Holds every send until released (a stalled daemon).
    private let gate = Mutex<[(UUID, CheckedContinuation<Void, Never>)]?>(nil)

    init(_ script: [DeliveryOutcome] = [], stalled: Bool = false) {
        self.script = Mutex(script)
        if stalled { gate.withLock { $0 = [] } }
    }

    var sent: [IncrementBatch] { attempts.withLock { $0 } }

    /// Sums of the batches that were answered `.delivered`, per key.
    let delivered = Mutex<[UUID: Int64]>([:])

    func release() {
        let waiting = gate.withLock { gate in
            defer { gate = nil }
            return gate ?? []
        }
        for (_, continuation) in waiting { continuation.resume() }
    }

    func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome {
        attempts.withLock { $0.append(batch) }
        // Held until released or cancelled: a transport must honour cancellation, since the
        // shutdown bound cancels sends still in flight.
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let held = gate.withLock { gate -> Bool in
                    guard gate != nil, !Task.isCancelled else { return false }
                    gate!.append((id, continuation))
                    return true
                }
                if !held { continuation.resume() }
            }
        } onCancel: {
            let waiting = gate.withLock { gate -> CheckedContinuation<Void, Never>? in
                guard let index = gate?.firstIndex(where: { $0.0 == id }) else { return nil }
                return gate!.remove(at: index).1
            }
            waiting?.resume()
        }
        try Task.checkCancellation()
        let outcome = script.withLock { $0.isEmpty ? .delivered : $0.removeFirst() }
        if outcome == .delivered {
            delivered.withLock { sums in for line in batch.lines { sums[line.key, default: 0] += line.value } }
        }
        return outcome
    }

    func shutdown() async {}
}

extension TallyClientConfiguration {
    /// Fast timers for tests; the URL is never dialled by a scripted transport (names aside).
    static func test(capacityLines: Int = 1_000, maxBatchLines: Int = 100, whenFull: WhenFull = .dropNewest)
        -> TallyClientConfiguration
    {
        var configuration = TallyClientConfiguration(url: "http://127.0.0.1:9")
        configuration.capacityLines = capacityLines
        configuration.maxBatchLines = maxBatchLines
        configuration.whenFull = whenFull
        configuration.flushIntervalSeconds = 0.02
        configuration.retryBaseDelaySeconds = 0.001
        configuration.retryMaxDelaySeconds = 0.01
        configuration.shutdownTimeoutSeconds = 2
        return configuration
    }
}

/// Polls `condition` until it holds or `seconds` pass (generous: `make test` runs suites in
/// parallel on a loaded 2-core machine; a passing test returns as soon as it holds).
func waitUntil(seconds: Double = 30, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
}

/// A mutex-guarded value that closures can share (a `Mutex` cannot be captured).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout sending Value) -> sending T) -> T { mutex.withLock(body) }
}
