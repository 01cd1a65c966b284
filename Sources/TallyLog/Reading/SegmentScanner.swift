/// Where one valid frame sits in a segment.
public struct FrameLocation: Equatable, Sendable {
    public var offset: Int
    public var header: FrameHeader
}

/// A run of bytes in a segment that is not a valid frame.
public struct SegmentDamage: Equatable, Sendable {
    public var offset: Int
    /// Where valid frames resume, or the end of the file.
    public var endOffset: Int
    /// The LSN the log expected at `offset`.
    public var expectedLSN: LSN
    public var reason: String
    /// A valid frame follows the damage: it cannot be an interrupted last write, since the
    /// writer never starts a frame before the previous one is durable.
    public var followedByValidFrame: Bool

    public var sizeBytes: Int { endOffset - offset }
}

/// What one pass over a segment's bytes found. The scanner never stops at damage: it looks
/// for the next valid frame so that `dump` can go on and `open` can tell a torn tail (nothing
/// valid after the damage) from corruption (valid data after it).
public struct SegmentScan: Sendable {
    public var fileName: String
    public var sizeBytes: Int
    public var header: SegmentHeader
    public var frames: [FrameLocation] = []
    public var damage: [SegmentDamage] = []
    /// The LSN after the last valid frame (the header's first LSN when there is none).
    public var nextLSN: LSN

    public var recordCount: Int { frames.reduce(0) { $0 + Int($1.header.recordCount) } }
}

enum SegmentScanner {
    /// Scans the frames of a segment whose header has already been decoded.
    static func scan(_ bytes: UnsafeRawBufferPointer, fileName: String, header: SegmentHeader) -> SegmentScan {
        var scan = SegmentScan(fileName: fileName, sizeBytes: bytes.count, header: header, nextLSN: header.firstLSN)
        var offset = SegmentHeader.sizeBytes
        var expected = header.firstLSN
        // Each pass either consumes a frame or jumps past damage, so offset strictly grows.
        while offset < bytes.count {
            if let frame = validFrame(in: bytes, at: offset, minimumLSN: 1, formatVersion: header.version) {
                if frame.firstLSN != expected {
                    scan.damage.append(SegmentDamage(
                        offset: offset, endOffset: offset, expectedLSN: expected,
                        reason: "frame starts at LSN \(frame.firstLSN) where LSN \(expected) was expected",
                        followedByValidFrame: true))
                }
                scan.frames.append(FrameLocation(offset: offset, header: frame))
                offset += frame.frameSizeBytes
                expected = frame.lastLSN + 1
                continue
            }
            let reason = diagnose(bytes, at: offset, formatVersion: header.version)
            if let resume = nextValidFrame(in: bytes, after: offset, minimumLSN: expected, formatVersion: header.version) {
                scan.damage.append(SegmentDamage(
                    offset: offset, endOffset: resume, expectedLSN: expected, reason: reason,
                    followedByValidFrame: true))
                offset = resume
            } else {
                scan.damage.append(SegmentDamage(
                    offset: offset, endOffset: bytes.count, expectedLSN: expected, reason: reason,
                    followedByValidFrame: false))
                break
            }
        }
        scan.nextLSN = expected
        return scan
    }

    /// The header of the frame at `offset` if the frame is complete and its checksum holds.
    static func validFrame(in bytes: UnsafeRawBufferPointer, at offset: Int, minimumLSN: LSN,
                           formatVersion: UInt32) -> FrameHeader? {
        guard offset + FrameHeader.sizeBytes <= bytes.count else { return nil }
        let header = FrameHeader(reading: bytes, at: offset)
        guard header.isPlausible(formatVersion: formatVersion), header.firstLSN >= minimumLSN else { return nil }
        guard offset + header.frameSizeBytes <= bytes.count else { return nil }
        let crc = FrameHeader.computeChecksum(of: bytes, frameAt: offset, storedLength: Int(header.storedLength))
        return crc == header.checksum ? header : nil
    }

    /// The offset of the next valid frame after `offset`, found by testing every later
    /// offset. Only damaged segments pay for this, and the plausibility test rejects almost
    /// every offset before a checksum is computed.
    static func nextValidFrame(in bytes: UnsafeRawBufferPointer, after offset: Int, minimumLSN: LSN,
                               formatVersion: UInt32) -> Int? {
        var candidate = offset + 1
        while candidate + FrameHeader.sizeBytes <= bytes.count {
            if validFrame(in: bytes, at: candidate, minimumLSN: minimumLSN, formatVersion: formatVersion) != nil {
                return candidate
            }
            candidate += 1
        }
        return nil
    }

    /// Says why the bytes at `offset` are not a valid frame, in an operator's words.
    static func diagnose(_ bytes: UnsafeRawBufferPointer, at offset: Int, formatVersion: UInt32) -> String {
        let remaining = bytes.count - offset
        if remaining < FrameHeader.sizeBytes {
            return "short frame header (\(remaining) of \(FrameHeader.sizeBytes) bytes before the end of the segment)"
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + FrameHeader.sizeBytes)])
        if headerBytes.allSatisfy({ $0 == 0 }) {
            return "zero bytes where a frame header should be"
        }
        let header = FrameHeader(reading: bytes, at: offset)
        if !header.isPlausible(formatVersion: formatVersion) {
            return "invalid frame header"
        }
        if header.frameSizeBytes > remaining {
            return "frame of \(header.frameSizeBytes) bytes runs past the end of the segment (\(remaining) bytes left)"
        }
        return "frame checksum mismatch"
    }
}
