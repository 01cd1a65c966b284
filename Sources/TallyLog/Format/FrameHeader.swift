/// The 28 bytes in front of every frame (one group-commit batch).
///
/// ```
/// 0        4       6          8           16       20        24      28
/// ┌────────┬───────┬──────────┬───────────┬────────┬─────────┬───────┐
/// │ stored │ flags │ reserved │ first LSN │ count  │ raw len │ crc32c│  payload (stored bytes) …
/// └────────┴───────┴──────────┴───────────┴────────┴─────────┴───────┘
/// ```
/// The CRC covers bytes 0..<24 of the header and then the stored payload, so a frame is
/// valid only when every byte of it reached the disk. A header of zeros is never valid
/// (a frame holds at least one record), which is how a zero-filled tail reads as the end.
public struct FrameHeader: Equatable, Sendable {
    public static let sizeBytes = 28
    /// An upper bound on records per frame that the format accepts; the writer's batch
    /// bound is lower. It keeps a corrupted count from asking for gigabytes.
    public static let maxRecordCount = 1 << 20

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// The payload is an lz4 block; otherwise it is the raw records.
        public static let lz4 = Flags(rawValue: 1)
        /// Format v2: a request section follows the records in the (raw) payload.
        public static let requests = Flags(rawValue: 2)

        /// The flags a frame may carry in a segment of `formatVersion`.
        static func known(formatVersion: UInt32) -> Flags {
            formatVersion >= 2 ? [.lz4, .requests] : [.lz4]
        }
    }

    /// Payload bytes as stored on disk.
    public var storedLength: UInt32
    public var flags: Flags
    public var firstLSN: LSN
    public var recordCount: UInt32
    /// Payload bytes after decompression: `recordCount × 32`, plus the request section's
    /// bytes when `flags` has `.requests`.
    public var rawLength: UInt32
    public var checksum: UInt32

    public var lastLSN: LSN { firstLSN + LSN(recordCount) - 1 }
    public var frameSizeBytes: Int { Self.sizeBytes + Int(storedLength) }
    public var isCompressed: Bool { flags.contains(.lz4) }
    public var hasRequests: Bool { flags.contains(.requests) }
    /// Bytes of the records in the raw payload (the request section follows them).
    public var recordBytes: Int { Int(recordCount) * LogRecord.sizeBytes }

    init(storedLength: UInt32, flags: Flags, firstLSN: LSN, recordCount: UInt32, rawLength: UInt32, checksum: UInt32) {
        self.storedLength = storedLength
        self.flags = flags
        self.firstLSN = firstLSN
        self.recordCount = recordCount
        self.rawLength = rawLength
        self.checksum = checksum
    }

    /// Reads the header fields at `offset` without judging them.
    init(reading bytes: UnsafeRawBufferPointer, at offset: Int) {
        precondition(offset + Self.sizeBytes <= bytes.count)
        storedLength = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        flags = Flags(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)))
        reserved = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self))
        firstLSN = LSN(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        recordCount = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
        rawLength = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 20, as: UInt32.self))
        checksum = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt32.self))
    }

    private var reserved: UInt16 = 0

    /// Whether the fields are consistent with each other (in a segment of `formatVersion`),
    /// before any checksum is computed. Cheap, so a scan that lost its place can test every
    /// offset.
    func isPlausible(formatVersion: UInt32) -> Bool {
        guard reserved == 0, flags.subtracting(.known(formatVersion: formatVersion)).isEmpty else { return false }
        guard recordCount >= 1, recordCount <= Self.maxRecordCount else { return false }
        let records = UInt64(recordCount) * UInt64(LogRecord.sizeBytes)
        if hasRequests {
            let section = UInt64(rawLength) &- records
            guard UInt64(rawLength) > records + 2,
                  section <= UInt64(RequestSection.maxBytes(recordCount: Int(recordCount))) else { return false }
        } else {
            guard UInt64(rawLength) == records else { return false }
        }
        guard firstLSN >= 1, firstLSN <= LSN.max - LSN(recordCount) else { return false }
        return isCompressed ? storedLength >= 1 && storedLength < rawLength : storedLength == rawLength
    }

    /// Writes the 28 header bytes (with `checksum`) at `offset`.
    func encode(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) {
        buffer.storeBytes(of: storedLength.littleEndian, toByteOffset: offset, as: UInt32.self)
        buffer.storeBytes(of: flags.rawValue.littleEndian, toByteOffset: offset + 4, as: UInt16.self)
        buffer.storeBytes(of: UInt16(0), toByteOffset: offset + 6, as: UInt16.self)
        buffer.storeBytes(of: firstLSN.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
        buffer.storeBytes(of: recordCount.littleEndian, toByteOffset: offset + 16, as: UInt32.self)
        buffer.storeBytes(of: rawLength.littleEndian, toByteOffset: offset + 20, as: UInt32.self)
        buffer.storeBytes(of: checksum.littleEndian, toByteOffset: offset + 24, as: UInt32.self)
    }

    /// The checksum a frame starting at `offset` should carry: header bytes 0..<24, then payload.
    static func computeChecksum(of bytes: UnsafeRawBufferPointer, frameAt offset: Int, storedLength: Int) -> UInt32 {
        let headerPart = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 24)])
        let payloadStart = offset + sizeBytes
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(payloadStart + storedLength)])
        return CRC32C.checksum(payload, continuing: CRC32C.checksum(headerPart))
    }
}
