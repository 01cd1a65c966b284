import Foundation

/// The 16-byte key of a counter, stored in a record exactly as its UUID's bytes.
///
/// Kept as two big-endian words so that hashing and comparing cost two integer operations,
/// and so that `<` orders keys as PostgreSQL orders `uuid` values (byte-wise): a checkpoint
/// that sorts by this order takes row locks in the same order on every node.
public struct LogKey: Hashable, Comparable, Sendable {
    /// The first eight bytes of the UUID, read big-endian.
    public var high: UInt64
    /// The last eight bytes of the UUID, read big-endian.
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(_ uuid: UUID) {
        let bytes = uuid.uuid
        self = withUnsafeBytes(of: bytes) { raw in
            LogKey(
                high: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                low: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            )
        }
    }

    public var uuid: UUID {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { raw in
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        return UUID(uuid: bytes)
    }

    /// Lower-case 8-4-4-4-12 form, as PostgreSQL prints a `uuid`.
    public var uuidString: String { uuid.uuidString.lowercased() }

    public static func < (lhs: LogKey, rhs: LogKey) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(high)
        hasher.combine(low)
    }

    /// The compactor's table takes a million distinct keys per interval, so hashing is on its
    /// hot path. Instead of SipHash over the two words, one 64×64→128-bit multiply of the words
    /// mixed with the process's random seed (the "mum" step of wyhash): every bit of both words
    /// reaches every bit of the result, and since the seed differs per process a client cannot
    /// precompute colliding keys the way it could against a fixed mix.
    public func _rawHashValue(seed: Int) -> Int {
        // Both operands carry the seed: a fixed operand could be zeroed by a chosen key,
        // sending every key with that word to one bucket.
        let seedBits = UInt64(UInt(bitPattern: seed))
        let left = high ^ seedBits ^ 0xA076_1D64_78BD_642F
        let right = low ^ (seedBits << 32 | seedBits >> 32) ^ 0xE703_7ED1_A0B4_28DB
        let product = left.multipliedFullWidth(by: right)
        return Int(truncatingIfNeeded: product.high ^ product.low)
    }
}
