import CFuzzRuntime
import Dispatch
import TallyLog

/// What a segment's bytes mean, worked out again from docs/log-format.md and the format
/// comments in Sources/TallyLog/Format, by code that shares nothing with TallyLog's reader.
/// `SegmentOracle.check` holds the reader to it.
public enum SegmentOracle {
    static let headerBytes = 40
    static let frameHeaderBytes = 28
    static let recordBytes = 32
    static let maxRecordCount: UInt64 = 1 << 20
    static let requestEntryHeaderBytes = 17
    static let maxIDBytes = 64

    // MARK: The reference reading

    enum HeaderResult: Equatable {
        case ok(version: UInt32, nodeHigh: UInt64, nodeLow: UInt64, firstLSN: UInt64)
        case tooShort(Int), badMagic, badChecksum, unsupportedVersion(UInt32), zeroFirstLSN
    }

    static func header(_ bytes: [UInt8]) -> HeaderResult {
        guard bytes.count >= headerBytes else { return .tooShort(bytes.count) }
        guard bytes[0..<8].elementsEqual("TALLYWAL".utf8) else { return .badMagic }
        guard ReferenceCRC32C.checksum(bytes[0..<36]) == bytes.le(36, UInt32.self) else { return .badChecksum }
        let version: UInt32 = bytes.le(8)
        guard version == 1 || version == 2 else { return .unsupportedVersion(version) }
        let firstLSN: UInt64 = bytes.le(28)
        guard firstLSN >= 1 else { return .zeroFirstLSN }  // LSNs start at 1
        return .ok(version: version, nodeHigh: bytes.be64(12), nodeLow: bytes.be64(20), firstLSN: firstLSN)
    }

    struct Frame: Equatable {
        var stored: UInt32, flags: UInt16, reserved: UInt16, firstLSN: UInt64, count: UInt32, rawLength: UInt32, crc: UInt32

        init(_ bytes: [UInt8], at offset: Int) {
            stored = bytes.le(offset)
            flags = bytes.le(offset + 4)
            reserved = bytes.le(offset + 6)
            firstLSN = bytes.le(offset + 8)
            count = bytes.le(offset + 16)
            rawLength = bytes.le(offset + 20)
            crc = bytes.le(offset + 24)
        }

        var lz4: Bool { flags & 1 != 0 }
        var requests: Bool { flags & 2 != 0 }
        var size: Int { frameHeaderBytes + Int(stored) }
        var lastLSN: UInt64 { firstLSN + UInt64(count) - 1 }
        var recordPart: Int { Int(count) * recordBytes }

        /// The header rules, before any checksum (FrameHeader's doc and docs/log-format.md).
        func isConsistent(version: UInt32) -> Bool {
            let known: UInt16 = version >= 2 ? 3 : 1
            guard reserved == 0, flags & ~known == 0 else { return false }
            guard count >= 1, UInt64(count) <= maxRecordCount else { return false }
            let records = UInt64(count) * UInt64(recordBytes)
            if requests {
                // A section of at least its entry count, and at most every record its own
                // request with a 64-byte id.
                guard UInt64(rawLength) > records + 2,
                      UInt64(rawLength) - records <= 2 + UInt64(count) * UInt64(requestEntryHeaderBytes + maxIDBytes)
                else { return false }
            } else {
                guard UInt64(rawLength) == records else { return false }
            }
            guard firstLSN >= 1, firstLSN <= UInt64.max - UInt64(count) else { return false }
            return lz4 ? stored >= 1 && stored < rawLength : stored == rawLength
        }
    }

    /// The frame at `offset` if it is whole, consistent, its LSN at least `minimumLSN` and its CRC holds.
    static func validFrame(_ bytes: [UInt8], at offset: Int, minimumLSN: UInt64, version: UInt32) -> Frame? {
        guard offset + frameHeaderBytes <= bytes.count else { return nil }
        let frame = Frame(bytes, at: offset)
        guard frame.isConsistent(version: version), frame.firstLSN >= minimumLSN,
              offset + frame.size <= bytes.count else { return nil }
        let crc = ReferenceCRC32C.checksum(bytes[(offset + frameHeaderBytes)..<(offset + frame.size)],
                                           continuing: ReferenceCRC32C.checksum(bytes[offset..<(offset + 24)]))
        return crc == frame.crc ? frame : nil
    }

    struct Damage: Equatable {
        var offset: Int, endOffset: Int, expectedLSN: UInt64, followedByValidFrame: Bool
    }

    struct Scan: Equatable {
        var frames: [Int] = []
        var damage: [Damage] = []
        var nextLSN: UInt64
    }

    /// docs/log-format.md "Reading rules" 2 and 3.
    static func scan(_ bytes: [UInt8], firstLSN: UInt64, version: UInt32) -> Scan {
        var scan = Scan(nextLSN: firstLSN)
        var offset = headerBytes
        var expected = firstLSN
        while offset < bytes.count {
            if let frame = validFrame(bytes, at: offset, minimumLSN: 1, version: version) {
                if frame.firstLSN != expected {
                    scan.damage.append(Damage(offset: offset, endOffset: offset, expectedLSN: expected,
                                              followedByValidFrame: true))
                }
                scan.frames.append(offset)
                offset += frame.size
                expected = frame.lastLSN + 1
                continue
            }
            var resume: Int?
            var candidate = offset + 1
            while candidate + frameHeaderBytes <= bytes.count {
                if validFrame(bytes, at: candidate, minimumLSN: expected, version: version) != nil {
                    resume = candidate
                    break
                }
                candidate += 1
            }
            scan.damage.append(Damage(offset: offset, endOffset: resume ?? bytes.count, expectedLSN: expected,
                                      followedByValidFrame: resume != nil))
            guard let resume else { break }
            offset = resume
        }
        scan.nextLSN = expected
        return scan
    }

    /// What a reader should find in one valid frame, in LSN order.
    enum Entry: Equatable, CustomStringConvertible {
        case request(id: [UInt8], digest: UInt64, firstLSN: UInt64, count: Int)
        case record(lsn: UInt64, high: UInt64, low: UInt64, value: Int64, millis: Int64)

        init(_ entry: LogEntry) {
            switch entry {
            case .request(let request):
                self = .request(id: request.tag.id, digest: request.tag.digest, firstLSN: request.firstLSN, count: request.count)
            case .record(let lsn, let record):
                self = .record(lsn: lsn, high: record.key.high, low: record.key.low, value: record.value,
                               millis: record.arrivalMillis)
            }
        }

        var description: String {
            switch self {
            case .request(let id, let digest, let first, let count): "request(\(id), \(digest), \(first)+\(count))"
            case .record(let lsn, let high, let low, let value, let millis): "record(\(lsn), \(high)/\(low), \(value), \(millis))"
            }
        }
    }

    /// The raw payload of a valid frame: stored, or lz4-decompressed to exactly its raw length.
    static func rawPayload(_ bytes: [UInt8], frame: Frame, at offset: Int) -> [UInt8]? {
        let payload = bytes[(offset + frameHeaderBytes)..<(offset + frame.size)]
        return frame.lz4 ? ReferenceLZ4.decompress(payload, rawLength: Int(frame.rawLength)) : Array(payload)
    }

    static func records(_ raw: [UInt8], frame: Frame) -> [Entry] {
        (0..<Int(frame.count)).map { index in
            let at = index * recordBytes
            return .record(lsn: frame.firstLSN + UInt64(index), high: raw.be64(at), low: raw.be64(at + 8),
                           value: Int64(bitPattern: raw.le(at + 16)), millis: Int64(bitPattern: raw.le(at + 24)))
        }
    }

    /// The request section (RequestSection's doc): nil when it is malformed.
    static func requests(_ section: [UInt8], frame: Frame) -> [Entry]? {
        guard section.count >= 2 else { return nil }
        let count = Int(section.le(0, UInt16.self))
        guard count >= 1 else { return nil }
        var entries: [Entry] = []
        var offset = 2
        var free = 0
        for _ in 0..<count {
            guard section.count - offset >= requestEntryHeaderBytes else { return nil }
            let first = Int(section.le(offset, UInt32.self))
            let records = Int(section.le(offset + 4, UInt32.self))
            let digest: UInt64 = section.le(offset + 8)
            let idLength = Int(section[offset + 16])
            offset += requestEntryHeaderBytes
            guard first >= free, records >= 1, first + records <= Int(frame.count),
                  idLength >= 1, idLength <= maxIDBytes, section.count - offset >= idLength else { return nil }
            let id = Array(section[offset..<(offset + idLength)])
            guard id.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { return nil }
            offset += idLength
            free = first + records
            entries.append(.request(id: id, digest: digest, firstLSN: frame.firstLSN + UInt64(first), count: records))
        }
        return offset == section.count ? entries : nil
    }

    /// Every entry of a valid frame, each request right before its first record; nil when the
    /// payload does not decode (lz4 or request section).
    static func entries(_ bytes: [UInt8], frame: Frame, at offset: Int) -> (records: [Entry]?, entries: [Entry]?) {
        guard let raw = rawPayload(bytes, frame: frame, at: offset) else { return (nil, nil) }
        let records = records(raw, frame: frame)
        guard frame.requests else { return (records, records) }
        guard let requests = requests(Array(raw[frame.recordPart...]), frame: frame) else { return (records, nil) }
        var merged: [Entry] = []
        var pending = requests[...]
        for record in records {
            if case .record(let lsn, _, _, _, _) = record, let next = pending.first,
               case .request(_, _, let first, _) = next, first == lsn {
                merged.append(next)
                pending = pending.dropFirst()
            }
            merged.append(record)
        }
        return (records, merged)
    }

    // MARK: Holding the reader to it

    /// The name a segment of these bytes gets in the fuzz targets' scratch directory: the
    /// first LSN of its header, so that a sound header matches its name.
    public static func fileName(for bytes: [UInt8]) -> String {
        SegmentName.fileName(firstLSN: bytes.count >= 36 ? bytes.le(28, UInt64.self) : 1)
    }

    /// Reads `bytes` through every public reading API, as `tally dump` and `verify` do, and
    /// traps on a crash-free disagreement with the reference: a frame returned that is not a
    /// valid frame, damage not reported, bytes read beyond a frame, entries decoded wrong.
    public static func check(_ bytes: [UInt8], in directory: ScratchDirectory) {
        let name = fileName(for: bytes)
        let path = directory.writeOnly(name, bytes)

        let contents: SegmentContents
        do {
            contents = try SegmentContents.read(path: path)
        } catch {
            violation("SegmentContents.read threw \(error) for a readable file")
        }
        require(contents.bytes == bytes, "SegmentContents.bytes differ from the file")

        // The header.
        let expectedHeader = header(bytes)
        let assumedVersion: UInt32
        let assumedFirstLSN: UInt64
        switch (contents.header, expectedHeader) {
        case (.success(let got), .ok(let version, let high, let low, let firstLSN)):
            require(got.version == version && got.nodeID == LogKey(high: high, low: low) && got.firstLSN == firstLSN,
                    "segment header decoded as \(got), expected \(expectedHeader)")
            (assumedVersion, assumedFirstLSN) = (version, firstLSN)
        case (.failure(let error), _):
            let same = switch (error, expectedHeader) {
            case (.tooShort(let a), .tooShort(let b)): a == b
            case (.badMagic, .badMagic), (.badChecksum, .badChecksum): true
            case (.unsupportedVersion(let a), .unsupportedVersion(let b)): a == b
            case (.zeroFirstLSN, .zeroFirstLSN): true
            default: false
            }
            require(same, "segment header refused as \(error), expected \(expectedHeader)")
            (assumedVersion, assumedFirstLSN) = (SegmentHeader.currentVersion, SegmentName.firstLSN(of: name) ?? 1)
        case (.success(let got), _):
            violation("segment header accepted as \(got), expected \(expectedHeader)")
        }

        // The scan: exactly the frames and damage of the reference, and together they cover
        // every byte after the header once.
        let scan = contents.scan
        require(scan.sizeBytes == bytes.count, "scan size \(scan.sizeBytes) for \(bytes.count) bytes")
        require(scan.header.version == assumedVersion && scan.header.firstLSN == assumedFirstLSN,
                "scan assumed header \(scan.header)")
        let reference = bytes.count >= headerBytes
            ? self.scan(bytes, firstLSN: assumedFirstLSN, version: assumedVersion)
            : Scan(nextLSN: assumedFirstLSN)
        let got = Scan(
            frames: scan.frames.map(\.offset),
            damage: scan.damage.map {
                Damage(offset: $0.offset, endOffset: $0.endOffset, expectedLSN: $0.expectedLSN,
                       followedByValidFrame: $0.followedByValidFrame)
            },
            nextLSN: scan.nextLSN)
        require(got == reference, "scan differs: got \(got), expected \(reference)")
        checkCoverage(scan, byteCount: bytes.count)

        // Every frame: its header as on disk, its entries as the reference decodes them.
        var decoder = FrameDecoder()
        for location in scan.frames {
            let frame = Frame(bytes, at: location.offset)
            let header = location.header
            require(header.storedLength == frame.stored && header.flags.rawValue == frame.flags
                        && header.firstLSN == frame.firstLSN && header.recordCount == frame.count
                        && header.rawLength == frame.rawLength && header.checksum == frame.crc,
                    "frame at \(location.offset): header \(header) is not the bytes' \(frame)")
            require(validFrame(bytes, at: location.offset, minimumLSN: 1, version: assumedVersion) != nil,
                    "frame at \(location.offset) returned as valid but it is not")
            let expected = entries(bytes, frame: frame, at: location.offset)

            var records: [Entry] = []
            let recordsError: (any Error)?
            do {
                try contents.forEachRecord(in: location, decoder: &decoder) { lsn, record in
                    records.append(Entry(.record(lsn, record)))
                }
                recordsError = nil
            } catch {
                recordsError = error
            }
            if let expectedRecords = expected.records {
                require(recordsError == nil, "frame at \(location.offset): forEachRecord threw \(recordsError!)")
                require(records == expectedRecords, "frame at \(location.offset): records \(records), expected \(expectedRecords)")
            } else {
                require(recordsError != nil, "frame at \(location.offset): forEachRecord decoded a payload that does not decode")
            }

            var entries: [Entry] = []
            let entriesError: (any Error)?
            do {
                try contents.forEachEntry(in: location, decoder: &decoder) { entries.append(Entry($0)) }
                entriesError = nil
            } catch {
                entriesError = error
            }
            if let expectedEntries = expected.entries {
                require(entriesError == nil, "frame at \(location.offset): forEachEntry threw \(entriesError!)")
                require(entries == expectedEntries, "frame at \(location.offset): entries \(entries), expected \(expectedEntries)")
            } else {
                require(entriesError is FrameDecodingError,
                        "frame at \(location.offset): a payload or request section that does not decode was "
                            + "not reported (forEachEntry: \(entriesError.map { "\($0)" } ?? "no error"))")
                require(entries.isEmpty, "frame at \(location.offset): entries handed out before the refusal: \(entries)")
            }

            // The frame alone: every byte outside it poisoned, so that AddressSanitizer reports
            // a read beyond the frame (before or after it) even where the file has bytes there.
            var isolated: [Entry] = []
            let isolatedError = decodeIsolated(bytes, location: location, decoder: &decoder) { isolated.append(Entry($0)) }
            require((isolatedError == nil) == (entriesError == nil) && isolated == entries,
                    "frame at \(location.offset): decoded alone it gives \(isolated) / \(isolatedError.map { "\($0)" } ?? "no error")")

            // The public decoder on the whole file's bytes, as LogReader uses it. A frame
            // without a request section has none, and its payload is not decoded for that.
            do {
                let requests = try bytes.withUnsafeBytes { try decoder.requests(in: $0, frame: location) }
                if frame.requests {
                    let expectedRequests = (expected.entries ?? []).filter { if case .request = $0 { true } else { false } }
                    require(expected.entries != nil && requests.map { Entry(.request($0)) } == expectedRequests,
                            "frame at \(location.offset): requests \(requests), expected \(expected.entries.map { "\($0)" } ?? "a refusal")")
                } else {
                    require(requests.isEmpty, "frame at \(location.offset): requests \(requests) without a request section")
                }
            } catch {
                require(frame.requests && expected.entries == nil, "frame at \(location.offset): requests(in:) threw \(error)")
            }
        }

        checkInspection(directory: directory, name: name, contents: contents, header: expectedHeader)
    }

    /// `FrameDecoder.forEachEntry` on a copy of the file's first bytes up to the end of the
    /// frame, with the frame 8-byte aligned and everything before and after it poisoned.
    static func decodeIsolated(_ bytes: [UInt8], location: FrameLocation, decoder: inout FrameDecoder,
                               _ body: (LogEntry) -> Void) -> (any Error)? {
        let end = location.offset + location.header.frameSizeBytes
        let allocation = UnsafeMutableRawBufferPointer.allocate(byteCount: end + 8, alignment: 8)
        defer {
            fuzz_unpoison(allocation.baseAddress!, allocation.count)
            allocation.deallocate()
        }
        let shift = (8 - location.offset % 8) % 8  // puts the frame's first byte on an 8-byte boundary
        let file = UnsafeMutableRawBufferPointer(rebasing: allocation[shift..<(shift + end)])
        file.copyBytes(from: bytes[0..<end])
        fuzz_poison(allocation.baseAddress!, shift + location.offset)
        fuzz_poison(allocation.baseAddress! + shift + end, allocation.count - shift - end)
        do {
            try decoder.forEachEntry(in: UnsafeRawBufferPointer(file), frame: location, body)
            return nil
        } catch {
            return error
        }
    }

    /// Frames and damage, in offset order, tile the bytes after the header exactly; only the
    /// last damage may be a tail, and each other damage ends where a frame starts.
    static func checkCoverage(_ scan: SegmentScan, byteCount: Int) {
        guard byteCount >= headerBytes else {
            require(scan.frames.isEmpty && scan.damage.isEmpty, "frames or damage in a file shorter than a header")
            return
        }
        var cursor = headerBytes
        var frames = scan.frames[...]
        var damage = scan.damage[...]
        while !frames.isEmpty || !damage.isEmpty {
            if let next = damage.first, next.offset == cursor, next.endOffset > cursor || frames.first?.offset == cursor {
                damage = damage.dropFirst()
                require(next.endOffset <= byteCount, "damage \(next) runs past the end (\(byteCount) bytes)")
                if next.followedByValidFrame {
                    require(frames.first?.offset == next.endOffset, "damage \(next) says a valid frame follows; none does")
                } else {
                    require(damage.isEmpty && frames.isEmpty && next.endOffset == byteCount,
                            "damage \(next) says nothing valid follows, but the scan goes on")
                }
                cursor = next.endOffset
                continue
            }
            guard let frame = frames.first, frame.offset == cursor else {
                violation("bytes at \(cursor) are neither a frame nor damage (frames \(scan.frames), damage \(scan.damage))")
            }
            frames = frames.dropFirst()
            require(frame.header.frameSizeBytes >= FrameHeader.sizeBytes, "frame at \(frame.offset) has a negative size")
            cursor += frame.header.frameSizeBytes
            require(cursor <= byteCount, "frame at \(frame.offset) runs past the end of the file")
        }
        require(cursor == byteCount, "bytes \(cursor)..<\(byteCount) are neither a frame nor damage")
    }

    /// `LogInspection` (what `Log.open`, `verify` and `recover` use) sees the same segment and
    /// classifies each piece of damage.
    static func checkInspection(directory: ScratchDirectory, name: String, contents: SegmentContents, header: HeaderResult) {
        let inspection: LogInspection
        do {
            inspection = try LogInspection.inspect(directory: directory.path)
        } catch {
            violation("LogInspection.inspect threw \(error)")
        }
        require(inspection.segments.count == 1 && inspection.segments[0].fileName == name,
                "inspection found segments \(inspection.segments.map(\.fileName))")
        let segment = inspection.segments[0]
        require(segment.sizeBytes == contents.bytes.count, "inspection size \(segment.sizeBytes)")
        guard case .ok = header else {
            require(segment.scan == nil && inspection.problems.count == 1 && inspection.problems[0].kind == .corruption
                        && inspection.problems[0].offset == 0,
                    "a bad header gave problems \(inspection.problems)")
            require(!inspection.isSound, "a bad header is sound")
            return
        }
        guard let scan = segment.scan else { violation("inspection has no scan for a sound header") }
        require(scan.frames == contents.scan.frames && scan.damage == contents.scan.damage && scan.nextLSN == contents.scan.nextLSN,
                "inspection and SegmentContents scanned differently")
        require(inspection.problems.count == scan.damage.count,
                "problems \(inspection.problems) for damage \(scan.damage)")
        for (index, (problem, damage)) in zip(inspection.problems, scan.damage).enumerated() {
            let tail = index == scan.damage.count - 1 && !damage.followedByValidFrame
            require(problem.offset == damage.offset && problem.lsn == damage.expectedLSN
                        && problem.kind == (tail ? .tornTail : .corruption),
                    "problem \(problem) for damage \(damage)")
        }
        require(inspection.isSound == scan.damage.isEmpty, "isSound \(inspection.isSound) with damage \(scan.damage)")
        require(inspection.nextLSN == scan.nextLSN, "inspection next LSN \(inspection.nextLSN)")
        if inspection.corruption.isEmpty { checkOpen(directory: directory, inspection: inspection, nodeID: scan.header.nodeID) }
    }

    /// A log the inspection finds free of corruption opens, as the daemon and `recover` open it
    /// (cutting a torn tail), continues at the LSN the inspection named, and is sound afterwards.
    static func checkOpen(directory: ScratchDirectory, inspection: LogInspection, nodeID: LogKey) {
        let log: Log
        do {
            log = try Log.open(LogConfiguration(directory: directory.path, nodeID: nodeID))
        } catch {
            violation("Log.open refused a log without corruption: \(error)")
        }
        let report = log.openReport
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await log.close()
            done.signal()
        }
        done.wait()
        require(report.nextLSN == inspection.nextLSN && (report.tornTail != nil) == (inspection.tornTail != nil),
                "Log.open reported \(report) for an inspection with next LSN \(inspection.nextLSN), torn tail \(String(describing: inspection.tornTail))")
        do {
            let after = try LogInspection.inspect(directory: directory.path, nodeID: nodeID)
            require(after.isSound && after.nextLSN == inspection.nextLSN,
                    "after Log.open the log has problems \(after.problems), next LSN \(after.nextLSN)")
        } catch {
            violation("LogInspection.inspect threw \(error) after Log.open")
        }
    }

    // MARK: The structured mode

    /// Reads the input as a segment and makes its checksums hold: the header's CRC, and each
    /// frame's in turn (frames are walked by their stored length; a frame that runs past the
    /// end, and whatever follows it, is kept as it is). A frame flagged lz4 whose stored
    /// length equals its raw length holds its payload uncompressed: it is lz4-compressed here
    /// (when that makes it smaller), so that mutations of records and request sections reach
    /// the decoders through lz4 as well.
    public static func fixUp(_ input: [UInt8]) -> [UInt8] {
        guard input.count >= headerBytes else { return input }
        var output = Array(input[0..<headerBytes])
        output.storeLE(ReferenceCRC32C.checksum(output[0..<36]), at: 36)
        var offset = headerBytes
        while offset + frameHeaderBytes <= input.count {
            var header = Array(input[offset..<(offset + frameHeaderBytes)])
            let stored = Int(header.le(0, UInt32.self))
            guard stored <= input.count - offset - frameHeaderBytes else { break }
            var payload = input[(offset + frameHeaderBytes)..<(offset + frameHeaderBytes + stored)]
            let flags: UInt16 = header.le(4)
            if flags & 1 != 0, stored == Int(header.le(20, UInt32.self)), let compressed = ReferenceLZ4.compress(payload) {
                payload = compressed[...]
                header.storeLE(UInt32(compressed.count), at: 0)
            }
            header.storeLE(ReferenceCRC32C.checksum(payload, continuing: ReferenceCRC32C.checksum(header[0..<24])), at: 24)
            output += header
            output += payload
            offset += frameHeaderBytes + stored
        }
        output += input[offset...]
        return output
    }
}
