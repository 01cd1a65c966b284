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
        try withRawPayload(in: bytes, frame: location) { raw in
            try Self.visit(UnsafeRawBufferPointer(rebasing: raw[0..<location.header.recordBytes]),
                           firstLSN: location.header.firstLSN, body)
        }
    }

    /// Calls `body` for each entry of the frame in LSN order: its records, each request entry
    /// (format v2) right before the first record it covers. Throws when the payload does not
    /// decompress to exactly the header's raw length, or its request section is malformed.
    public mutating func forEachEntry(
        in bytes: UnsafeRawBufferPointer,
        frame location: FrameLocation,
        _ body: (LogEntry) throws -> Void
    ) throws {
        let header = location.header
        try withRawPayload(in: bytes, frame: location) { raw in
            var requests: ArraySlice<RequestEntry> = []
            if header.hasRequests {
                let section = UnsafeRawBufferPointer(rebasing: raw[header.recordBytes...])
                guard let decoded = RequestSection.decode(section, recordCount: Int(header.recordCount),
                                                          firstLSN: header.firstLSN) else {
                    throw FrameDecodingError(offset: location.offset, firstLSN: header.firstLSN,
                                             reason: "its request section is malformed")
                }
                requests = decoded[...]  // ascending, disjoint (the decoder checks)
            }
            try Self.visit(UnsafeRawBufferPointer(rebasing: raw[0..<header.recordBytes]), firstLSN: header.firstLSN) {
                lsn, record in
                if let next = requests.first, next.firstLSN == lsn {
                    requests = requests.dropFirst()
                    try body(.request(next))
                }
                try body(.record(lsn, record))
            }
        }
    }

    /// The frame's request entries (none for a frame without a request section).
    public mutating func requests(in bytes: UnsafeRawBufferPointer, frame location: FrameLocation) throws -> [RequestEntry] {
        guard location.header.hasRequests else { return [] }
        var requests: [RequestEntry] = []
        try forEachEntry(in: bytes, frame: location) { entry in
            if case .request(let request) = entry { requests.append(request) }
        }
        return requests
    }

    /// Hands `body` the frame's raw payload: the stored bytes, or their decompression.
    private mutating func withRawPayload(
        in bytes: UnsafeRawBufferPointer, frame location: FrameLocation, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let header = location.header
        let payloadStart = location.offset + FrameHeader.sizeBytes
        let payload = UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(payloadStart + Int(header.storedLength))])
        let rawLength = Int(header.rawLength)
        precondition(rawLength >= header.recordBytes, "frame header was not validated")
        if !header.isCompressed {
            try body(payload)
            return
        }
        if scratch.count < rawLength { scratch = [UInt8](repeating: 0, count: rawLength) }
        let ok = scratch.withUnsafeMutableBytes { out in
            LZ4.decompress(payload, into: UnsafeMutableRawBufferPointer(rebasing: out[0..<rawLength]))
        }
        guard ok else {
            throw FrameDecodingError(offset: location.offset, firstLSN: header.firstLSN,
                                     reason: "it does not decompress to its stated length")
        }
        try scratch.withUnsafeBytes { raw in
            try body(UnsafeRawBufferPointer(rebasing: raw[0..<rawLength]))
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

/// A frame whose checksum held but whose payload did not decode: lz4 did not give its
/// stated length, or its request section is malformed.
public struct FrameDecodingError: Error, CustomStringConvertible {
    public var offset: Int
    public var firstLSN: LSN
    public var reason: String = "it does not decompress to its stated length"
    public var description: String {
        "frame at offset \(offset) (LSN \(firstLSN)): \(reason)"
    }
}
