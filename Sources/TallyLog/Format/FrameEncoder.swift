/// Turns a batch of appends into one frame's bytes, reusing its buffers between batches.
///
/// Owned by the single writer thread, so it needs no locking; its buffers grow to the
/// largest batch seen (bounded by the writer's batch limit) and are then reused.
struct FrameEncoder {
    private var raw: [UInt8] = []
    private var frame: [UInt8] = []
    /// Length of the last encoded frame at the start of `frame`.
    private(set) var frameLength = 0

    /// Encodes the appends' records, in order, as the frame starting at `firstLSN`, with a
    /// request section when any append carries a tag. Afterwards `withFrameBytes` shows
    /// exactly the frame's bytes.
    mutating func encode<Appends: Collection>(_ appends: Appends, recordCount: Int, firstLSN: LSN)
    where Appends.Element == Append {
        precondition(recordCount >= 1 && recordCount <= FrameHeader.maxRecordCount, "frame record count out of bounds")
        let recordBytes = recordCount * LogRecord.sizeBytes
        var tagged: [(index: Int, count: Int, tag: RequestTag)] = []
        var index = 0
        for append in appends {
            if let tag = append.tag { tagged.append((index, append.records.count, tag)) }
            index += append.records.count
        }
        let rawLength = recordBytes + (tagged.isEmpty ? 0 : RequestSection.sizeBytes(tagged.lazy.map(\.tag)))
        if raw.count < rawLength { raw = [UInt8](repeating: 0, count: rawLength) }
        raw.withUnsafeMutableBytes { buffer in
            var offset = 0
            for append in appends {
                for record in append.records {
                    record.encode(into: buffer, at: offset)
                    offset += LogRecord.sizeBytes
                }
            }
            precondition(offset == recordBytes, "records counted and records encoded differ")
            if !tagged.isEmpty {
                let written = RequestSection.encode(tagged, into: buffer, at: offset)
                precondition(offset + written == rawLength, "request section size differs from its encoding")
            }
        }
        let sectionFlag: FrameHeader.Flags = tagged.isEmpty ? [] : .requests

        let capacity = FrameHeader.sizeBytes + max(rawLength, LZ4.compressBound(rawLength))
        if frame.count < capacity { frame = [UInt8](repeating: 0, count: capacity) }
        frameLength = raw.withUnsafeBytes { rawAll in
            frame.withUnsafeMutableBytes { out -> Int in
                let source = UnsafeRawBufferPointer(rebasing: rawAll[0..<rawLength])
                let payload = UnsafeMutableRawBufferPointer(rebasing: out[FrameHeader.sizeBytes...])
                var flags = sectionFlag
                let storedLength: Int
                if let compressed = LZ4.compress(source, into: payload) {
                    flags.insert(.lz4)
                    storedLength = compressed
                } else {
                    payload.copyMemory(from: source)
                    storedLength = rawLength
                }
                var header = FrameHeader(
                    storedLength: UInt32(storedLength), flags: flags, firstLSN: firstLSN,
                    recordCount: UInt32(recordCount), rawLength: UInt32(rawLength), checksum: 0
                )
                header.encode(into: out, at: 0)
                header.checksum = FrameHeader.computeChecksum(
                    of: UnsafeRawBufferPointer(out), frameAt: 0, storedLength: storedLength)
                header.encode(into: out, at: 0)
                assert(header.isPlausible(formatVersion: SegmentHeader.currentVersion))
                return FrameHeader.sizeBytes + storedLength
            }
        }
    }

    /// The bytes of the last encoded frame.
    func withFrameBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try frame.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<frameLength])) }
    }
}
