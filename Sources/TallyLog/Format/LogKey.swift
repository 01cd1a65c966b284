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
}
