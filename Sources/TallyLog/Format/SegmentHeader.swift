/// The 40 bytes that open every segment file.
///
/// ```
/// 0          8        12                28          36      40
/// ┌──────────┬────────┬─────────────────┬───────────┬───────┐
/// │ TALLYWAL │ version│ node id (16)    │ first LSN │ crc32c│
/// └──────────┴────────┴─────────────────┴───────────┴───────┘
/// ```
/// The header carries the first LSN so that even an empty segment says where the log
/// continues; the node id so that one node's log is never replayed as another's.
public struct SegmentHeader: Equatable, Sendable {
    public static let sizeBytes = 40
    public static let magic: [UInt8] = Array("TALLYWAL".utf8)
    /// Version 2 frames may carry a request section (`FrameHeader.Flags.requests`); version
    /// 1 segments are read as before, and a v2 writer never appends to one.
    public static let currentVersion: UInt32 = 2
    public static let readableVersions: ClosedRange<UInt32> = 1...2

    public var version: UInt32
    public var nodeID: LogKey
    public var firstLSN: LSN

    public init(nodeID: LogKey, firstLSN: LSN, version: UInt32 = SegmentHeader.currentVersion) {
        self.version = version
        self.nodeID = nodeID
        self.firstLSN = firstLSN
    }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.sizeBytes)
        bytes.withUnsafeMutableBytes { raw in
            for (index, byte) in Self.magic.enumerated() { raw[index] = byte }
            raw.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: nodeID.high.bigEndian, toByteOffset: 12, as: UInt64.self)
            raw.storeBytes(of: nodeID.low.bigEndian, toByteOffset: 20, as: UInt64.self)
            raw.storeBytes(of: firstLSN.littleEndian, toByteOffset: 28, as: UInt64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<36]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: 36, as: UInt32.self)
        }
        return bytes
    }

    /// Why a header could not be read.
    public enum DecodingError: Error, Equatable, CustomStringConvertible {
        case tooShort(sizeBytes: Int)
        case badMagic
        case badChecksum
        case unsupportedVersion(UInt32)
        /// LSNs start at 1: a header whose checksum holds over first LSN 0 was never written by
        /// Tally, and every reader computes "the LSN before the next one" from it.
        case zeroFirstLSN

        public var description: String {
            switch self {
            case .tooShort(let size): "segment header too short (\(size) of \(SegmentHeader.sizeBytes) bytes)"
            case .badMagic: "not a Tally log segment (bad magic)"
            case .badChecksum: "segment header checksum mismatch"
            case .unsupportedVersion(let version): "unsupported segment format version \(version)"
            case .zeroFirstLSN: "segment header says first LSN 0 (LSNs start at 1)"
            }
        }
    }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(DecodingError) {
        guard bytes.count >= Self.sizeBytes else { throw .tooShort(sizeBytes: bytes.count) }
        guard Self.magic.indices.allSatisfy({ bytes[$0] == Self.magic[$0] }) else { throw .badMagic }
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 36, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<36])) == stored else { throw .badChecksum }
        let version = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard Self.readableVersions.contains(version) else { throw .unsupportedVersion(version) }
        self.version = version
        self.nodeID = LogKey(
            high: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt64.self)),
            low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 20, as: UInt64.self))
        )
        self.firstLSN = LSN(littleEndian: bytes.loadUnaligned(fromByteOffset: 28, as: UInt64.self))
        guard firstLSN >= 1 else { throw .zeroFirstLSN }
    }
}
