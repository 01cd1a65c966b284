/// One increment as the log stores it: 32 bytes on disk, before compression.
///
/// ```
/// 0        16          24                32
/// ┌────────┬───────────┬─────────────────┐
/// │ key    │ value i64 │ arrival ms i64  │   (integers little-endian)
/// └────────┴───────────┴─────────────────┘
/// ```
public struct LogRecord: Hashable, Sendable {
    public static let sizeBytes = 32

    public var key: LogKey
    /// The increment. The log stores any Int64; the HTTP front admits only 1…Int64.max.
    public var value: Int64
    /// When the increment arrived, in milliseconds since the Unix epoch (UTC).
    public var arrivalMillis: Int64

    public init(key: LogKey, value: Int64, arrivalMillis: Int64) {
        self.key = key
        self.value = value
        self.arrivalMillis = arrivalMillis
    }
}

extension LogRecord {
    /// Writes the record's 32 bytes at `offset`.
    @inline(__always)
    func encode(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBytes(of: key.high.bigEndian, toByteOffset: offset, as: UInt64.self)
        buffer.storeBytes(of: key.low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
        buffer.storeBytes(of: UInt64(bitPattern: value).littleEndian, toByteOffset: offset + 16, as: UInt64.self)
        buffer.storeBytes(of: UInt64(bitPattern: arrivalMillis).littleEndian, toByteOffset: offset + 24, as: UInt64.self)
    }

    /// Reads the record whose 32 bytes start at `offset`.
    @inline(__always)
    init(decoding buffer: UnsafeRawBufferPointer, at offset: Int) {
        let high = UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let low = UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        let value = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
        let time = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
        self.init(
            key: LogKey(high: high, low: low),
            value: Int64(bitPattern: value),
            arrivalMillis: Int64(bitPattern: time)
        )
    }
}
