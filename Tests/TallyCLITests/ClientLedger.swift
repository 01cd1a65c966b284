import Foundation
import Synchronization
import TallyClient

/// What test callers handed to a `TallyClient`, per key: the sum of the increments the client
/// answered `.queued` for, and how many calls it refused.
final class ClientLedger: Sendable {
    private let queued = Mutex<[String: Int]>([:])
    private let refused = Mutex<[IncrementResult: Int]>([:])

    var queuedTotals: [String: Int] { queued.withLock { $0 } }
    var refusals: [IncrementResult: Int] { refused.withLock { $0 } }

    /// `callers` tasks, each incrementing random keys of `keys` by random values until
    /// `stop` says so (or `maxCalls` each); returns when they have all stopped.
    func run(_ client: TallyClient, keys: [UUID], callers: Int, maxCalls: Int = 1_000_000,
             pauseEvery: Int = 64, stop: @escaping @Sendable () -> Bool) async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var mine: [String: Int] = [:]
                    var refusals: [IncrementResult: Int] = [:]
                    var calls = 0
                    while calls < maxCalls && !stop() {
                        let key = keys.randomElement()!
                        let value = Int.random(in: 1...1_000)
                        let result = await client.increment(key: key, by: Int64(value))
                        if result == .queued {
                            mine[key.uuidString.lowercased(), default: 0] += value
                        } else {
                            refusals[result, default: 0] += 1
                        }
                        calls += 1
                        // Let the client's own tasks run on a loaded machine (a caller that
                        // never suspends would starve them under .dropNewest).
                        if calls % pauseEvery == 0 { try? await Task.sleep(for: .milliseconds(1)) }
                    }
                    let counted = mine
                    let refusedHere = refusals
                    self.queued.withLock { $0.merge(counted, uniquingKeysWith: +) }
                    self.refused.withLock { $0.merge(refusedHere, uniquingKeysWith: +) }
                }
            }
        }
    }
}

extension TallyClientConfiguration {
    /// A client for end-to-end tests: quick timers, short backoff.
    static func endToEnd(port: Int, whenFull: WhenFull = .wait, capacityLines: Int = 100_000) -> TallyClientConfiguration {
        var configuration = TallyClientConfiguration(url: "http://127.0.0.1:\(port)")
        configuration.whenFull = whenFull
        configuration.capacityLines = capacityLines
        configuration.maxBatchLines = 500
        configuration.flushIntervalSeconds = 0.05
        configuration.requestTimeoutSeconds = 2
        configuration.retryBaseDelaySeconds = 0.02
        configuration.retryMaxDelaySeconds = 0.5
        configuration.shutdownTimeoutSeconds = 30
        return configuration
    }
}
