import Benchmark
import Foundation
import TallyClient

// TallyClient.increment(key:by:) in process: the cost an application pays per count. The
// client runs with a transport that answers at once, so the queue never fills and the
// figure is the caller's path alone (merging, sealing, handing batches to the senders);
// the target is ≤ 1 µs per call. Each iteration is 100,000 calls; the custom metric is the
// wall-clock time per call.

/// Delivers every batch at once: the network left out on purpose.
private struct InstantTransport: TallyTransport {
    func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome { .delivered }
    func shutdown() async {}
}

private let nanosecondsPerCall = BenchmarkMetric.custom("ns per increment", polarity: .prefersSmaller, useScalingFactor: false)
private let callsPerIteration = 100_000

private func runningClient() throws -> (TallyClient, Task<Void, any Error>) {
    var configuration = TallyClientConfiguration(url: "http://127.0.0.1:9")
    configuration.capacityLines = 1_000_000
    let client = try TallyClient(configuration: configuration, transport: InstantTransport())
    return (client, Task { try await client.run() })
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, nanosecondsPerCall],
        maxDuration: .seconds(5),
        maxIterations: 50
    )

    // (label, distinct keys, concurrent callers)
    for (label, keyCount, callers) in [("1 hot key", 1, 1), ("100 route keys", 100, 1), ("100,000 distinct keys", 100_000, 1),
                                        ("100 route keys, 4 concurrent callers", 100, 4)] {
        Benchmark("TallyClient.increment, \(label) (100,000 calls per iteration)") { benchmark in
            let (client, running) = try! runningClient()
            let keys = (0..<keyCount).map { _ in UUID() }
            var elapsed = Duration.zero
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let started = ContinuousClock.now
                await withTaskGroup(of: Void.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            var index = caller
                            for _ in 0..<(callsPerIteration / callers) {
                                blackHole(await client.increment(key: keys[index % keyCount], by: 1))
                                index &+= 7
                            }
                        }
                    }
                }
                elapsed += ContinuousClock.now - started
            }
            benchmark.stopMeasurement()
            let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
            benchmark.measurement(nanosecondsPerCall,
                                  Int((nanoseconds / Double(callsPerIteration * benchmark.scaledIterations.count)).rounded()))
            _ = await client.shutdown()
            _ = try? await running.value
        }
    }
}
