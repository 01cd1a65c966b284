/// Capped exponential backoff with full jitter: attempt n waits a uniformly random time in
/// [0, min(cap, base · 2ⁿ⁻¹)]. The randomness spreads clients that failed together (a daemon
/// restart) so that they do not come back in one wave; the cap bounds how long a recovered
/// daemon waits for traffic.
struct Backoff: Sendable {
    let baseSeconds: Double
    let maxSeconds: Double

    /// The ceiling of attempt `attempt` (1-based) before jitter.
    func ceilingSeconds(attempt: Int) -> Double {
        let doublings = min(max(attempt - 1, 0), 62)
        return min(maxSeconds, baseSeconds * Double(UInt64(1) << UInt64(doublings)))
    }

    /// The wait before retry number `attempt`, never shorter than what the daemon asked for
    /// (`Retry-After`), never longer than the cap.
    func delay<Generator: RandomNumberGenerator>(attempt: Int, atLeast floor: Duration? = nil,
                                                 using generator: inout Generator) -> Duration {
        let jittered = Double.random(in: 0...ceilingSeconds(attempt: attempt), using: &generator)
        let floorSeconds = floor.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 } ?? 0
        return .seconds(double: min(maxSeconds, max(jittered, floorSeconds)))
    }
}
