import TallyLog

/// A 64-bit digest of what a request asks to count, in order: its keys and values (not its
/// bytes, so that a retry that differs only in whitespace or key case is the same request).
/// It tells a retry from another request that reuses the id: same id, other digest → 409.
/// Stored in the log and in `tally_requests`, so it is defined here for good: a change would
/// need a new log format version.
public enum RequestDigest {
    public static func of(_ increments: some Sequence<(key: LogKey, value: Int64)>) -> UInt64 {
        var state: UInt64 = 0x7461_6C6C_7931_2E30  // "tally1.0"
        var count: UInt64 = 0
        for increment in increments {
            state = mix(state ^ increment.key.high)
            state = mix(state ^ increment.key.low)
            state = mix(state ^ UInt64(bitPattern: increment.value))
            count += 1
        }
        return mix(state ^ count)
    }

    public static func of(_ records: [LogRecord]) -> UInt64 {
        of(records.lazy.map { (key: $0.key, value: $0.value) })
    }

    /// SplitMix64's finaliser: every input bit reaches every output bit.
    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
