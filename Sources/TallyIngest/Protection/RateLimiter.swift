import Synchronization

/// Token buckets per client: `ratePerSecond` sustained, `burst` at once.
///
/// Memory is bounded: at most `maxClients` buckets across all shards. A bucket that has
/// refilled to `burst` is indistinguishable from a new one, so when a shard is full such
/// buckets are dropped first; if none is full, an arbitrary one is (it then restarts full,
/// the only unfairness a bound costs). Sixteen mutex-guarded shards keep request threads
/// from contending on one lock.
public final class RateLimiter: Sendable {
    public enum Decision: Equatable, Sendable {
        case admitted
        /// Refused; a token is available again after this many whole seconds (≥ 1).
        case limited(retryAfterSeconds: Int)
    }

    private struct Bucket {
        var tokens: Double
        var updatedAt: ContinuousClock.Instant
    }

    private static let shardCount = 16
    public let ratePerSecond: Double
    public let burst: Double
    public let maxClients: Int
    private final class Shard: Sendable {
        let buckets = Mutex<[String: Bucket]>([:])
    }

    private let shards: [Shard]

    public init(ratePerSecond: Double, burst: Int, maxClients: Int = 100_000) {
        precondition(ratePerSecond > 0 && burst >= 1 && maxClients >= Self.shardCount, "invalid rate limit")
        self.ratePerSecond = ratePerSecond
        self.burst = Double(burst)
        self.maxClients = maxClients
        shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    /// Takes one token for `client` if it has one.
    public func admit(client: String, now: ContinuousClock.Instant = .now) -> Decision {
        let shard = shards[Int(UInt(bitPattern: client.hashValue) % UInt(Self.shardCount))]
        let perShard = maxClients / Self.shardCount
        return shard.buckets.withLock { buckets in
            var bucket = buckets[client] ?? Bucket(tokens: burst, updatedAt: now)
            let elapsed = now - bucket.updatedAt
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            bucket.tokens = min(burst, bucket.tokens + max(0, seconds) * ratePerSecond)
            bucket.updatedAt = now
            let decision: Decision
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                decision = .admitted
            } else {
                let wait = (1 - bucket.tokens) / ratePerSecond
                decision = .limited(retryAfterSeconds: max(1, Int(wait.rounded(.up))))
            }
            if buckets[client] == nil && buckets.count >= perShard { evict(from: &buckets, now: now) }
            buckets[client] = bucket
            return decision
        }
    }

    /// Buckets currently tracked (for tests and metrics).
    public var trackedClients: Int { shards.reduce(0) { $0 + $1.buckets.withLock { $0.count } } }

    private func evict(from buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        let refillSeconds = burst / ratePerSecond
        let full = buckets.filter { entry in
            let elapsed = now - entry.value.updatedAt
            return Double(elapsed.components.seconds) >= refillSeconds
        }
        for key in full.keys { buckets.removeValue(forKey: key) }
        if buckets.count >= maxClients / Self.shardCount, let any = buckets.first?.key {
            buckets.removeValue(forKey: any)
        }
    }
}
