/// Decodes frame payloads into records, reusing one buffer for decompression.
///
/// The checksum is verified by the scanner before a payload reaches here, so lz4 only ever
/// sees bytes that were written whole; the decompressed length is still checked exactly.
public struct FrameDecoder {
    private var scratch: [UInt8] = []

    public init() {}

    /// Calls `body` for each record of the frame at `location` in `bytes`, in LSN order.
    /// Throws when the payload does not decompress to exactly the header's raw length.
    public mutating func forEachRecord(
        in bytes: UnsafeRawBufferPointer,
        frame location: FrameLocation,
        _ body: (LSN, LogRecord) throws -> Void
    ) throws {
        let header = location.header
        let payloadStart = location.offset + FrameHeader.sizeBytes
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(payloadStart + Int(header.storedLength))])
        let rawLength = Int(header.rawLength)
        precondition(rawLength == Int(header.recordCount) * LogRecord.sizeBytes, "frame header was not validated")

        if !header.isCompressed {
            try Self.visit(payload, firstLSN: header.firstLSN, body)
            return
        }
        if scratch.count < rawLength { scratch = [UInt8](repeating: 0, count: rawLength) }
        let ok = scratch.withUnsafeMutableBytes { out in
            LZ4.decompress(payload, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<rawLength]))
        }
        guard ok else { throw FrameDecodingError(offset: location.offset, firstLSN: header.firstLSN) }
        try scratch.withUnsafeBytes { raw in
            try Self.visit(UnsafeRawBufferPointer(rebasing: raw[0..<rawLength]), firstLSN: header.firstLSN, body)
        }
    }

    private static func visit(_ raw: UnsafeRawBufferPointer, firstLSN: LSN, _ body: (LSN, LogRecord) throws -> Void) rethrows {
        var lsn = firstLSN
        var offset = 0
        while offset < raw.count {
            try body(lsn, LogRecord(decoding: raw, at: offset))
            offset += LogRecord.sizeBytes
            lsn += 1
        }
    }
}

/// A frame whose checksum held but whose lz4 payload did not decode to its stated length.
public struct FrameDecodingError: Error, CustomStringConvertible {
    public var offset: Int
    public var firstLSN: LSN
    public var description: String {
        "frame at offset \(offset) (LSN \(firstLSN)) does not decompress to its stated length"
    }
}
