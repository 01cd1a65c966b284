/// One segment file read whole and scanned, for tools that show it frame by frame.
///
/// Unlike `Log.open` this never stops at a problem: a bad header is reported and the frames
/// are still scanned (assuming the first LSN in the file name), so `tally dump` can show
/// everything that is still readable in a damaged segment.
public struct SegmentContents {
    public let path: String
    public let fileName: String
    public let bytes: [UInt8]
    /// The decoded header, or why it could not be decoded.
    public let header: Result<SegmentHeader, SegmentHeader.DecodingError>
    public let scan: SegmentScan

    public static func read(path: String) throws(LogError) -> SegmentContents {
        let bytes = try SystemCalls.readFile(path)
        let fileName = String(path.split(separator: "/").last ?? Substring(path))
        let header = bytes.withUnsafeBytes { raw in
            Result { () throws(SegmentHeader.DecodingError) in try SegmentHeader(decoding: raw) }
        }
        let assumed = (try? header.get())
            ?? SegmentHeader(nodeID: LogKey(high: 0, low: 0), firstLSN: SegmentName.firstLSN(of: fileName) ?? 1)
        let scan = bytes.withUnsafeBytes { raw in
            raw.count >= SegmentHeader.sizeBytes
                ? SegmentScanner.scan(raw, fileName: fileName, header: assumed)
                : SegmentScan(fileName: fileName, sizeBytes: raw.count, header: assumed, nextLSN: assumed.firstLSN)
        }
        return SegmentContents(path: path, fileName: fileName, bytes: bytes, header: header, scan: scan)
    }

    /// Calls `body` for each record of `frame`, which must be one of `scan.frames`.
    public func forEachRecord(
        in frame: FrameLocation, decoder: inout FrameDecoder, _ body: (LSN, LogRecord) throws -> Void
    ) throws {
        try bytes.withUnsafeBytes { raw in
            try decoder.forEachRecord(in: raw, frame: frame, body)
        }
    }

    /// Calls `body` for each entry of `frame` (request entries, then records).
    public func forEachEntry(
        in frame: FrameLocation, decoder: inout FrameDecoder, _ body: (LogEntry) throws -> Void
    ) throws {
        try bytes.withUnsafeBytes { raw in
            try decoder.forEachEntry(in: raw, frame: frame, body)
        }
    }

    /// The segment files of a log directory, in log order.
    public static func segmentPaths(in directory: String) throws(LogError) -> [String] {
        try SystemCalls.listDirectory(directory)
            .filter { SegmentName.firstLSN(of: $0) != nil }
            .sorted()
            .map { directory + "/" + $0 }
    }
}
