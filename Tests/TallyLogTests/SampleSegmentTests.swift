import Foundation
import Testing
@testable import TallyLog

/// The committed sample segments pin the format: version 1 (written by Tally before request
/// entries existed) must keep decoding, and version 2 is what today's writer produces. If the
/// encoder or decoder drifts, this fails, and `docs/log-format.md` (which walks through the
/// same bytes) must change together with a new version number.
@Suite struct SampleSegmentTests {
    private var samplePath: String {
        Bundle.module.path(forResource: "00000000000000000001", ofType: "wal", inDirectory: "Fixtures/sample-v1")!
    }

    @Test func theCommittedSampleDecodesToItsRecords() throws {
        let contents = try SegmentContents.read(path: samplePath)
        let header = try contents.header.get()
        #expect(header == SegmentHeader(nodeID: FixtureSample.node, firstLSN: 1, version: 1))
        #expect(contents.scan.damage.isEmpty)
        #expect(contents.scan.frames.map(\.offset) == [40, 100, 201])
        #expect(contents.scan.frames.map(\.header.firstLSN) == [1, 2, 10])
        #expect(contents.scan.frames.map(\.header.isCompressed) == [false, true, true])
        #expect(contents.bytes.count == 283)

        var decoder = FrameDecoder()
        var decoded: [LogRecord] = []
        var lsns: [LSN] = []
        for frame in contents.scan.frames {
            try contents.forEachRecord(in: frame, decoder: &decoder) { lsn, record in
                lsns.append(lsn)
                decoded.append(record)
            }
        }
        #expect(decoded == FixtureSample.batches.flatMap { $0 })
        #expect(lsns == Array(1...11))
    }

    @Test func todaysWriterProducesTheSameHeadersAndRawFrame() async throws {
        let dir = TemporaryDirectory()
        var config = LogConfiguration(directory: dir.path, nodeID: FixtureSample.node)
        config.segmentSizeBytes = 1 << 20
        let log = try Log.open(config)
        for batch in FixtureSample.batches { try await log.append(batch) }
        await log.close()
        let written = try fileBytes(dir.file(SegmentName.fileName(firstLSN: 1)))
        let sample = try fileBytes(samplePath)
        // The segment header (now version 2) and the raw first frame do not depend on lz4's
        // version: byte-exact, apart from the version and the header's checksum.
        #expect(written[0..<8] == sample[0..<8] && written[8] == 2 && written[12..<36] == sample[12..<36])
        #expect(written[40..<100] == sample[40..<100])
        // lz4 output may differ between library versions; the records may not.
        let reread = try readAll(dir.path).map(\.1)
        #expect(reread == FixtureSample.batches.flatMap { $0 })
    }

    private var sampleV2Path: String {
        Bundle.module.path(forResource: "00000000000000000001", ofType: "wal", inDirectory: "Fixtures/sample-v2")!
    }

    @Test func theVersion2SampleDecodesToItsRecordsAndRequests() throws {
        let contents = try SegmentContents.read(path: sampleV2Path)
        #expect(try contents.header.get() == SegmentHeader(nodeID: FixtureSample.node, firstLSN: 1, version: 2))
        #expect(contents.scan.damage.isEmpty)
        #expect(contents.scan.frames.map(\.header.firstLSN) == [1, 2])
        #expect(contents.scan.frames.map(\.header.hasRequests) == [false, true])
        var decoder = FrameDecoder()
        var entries: [String] = []
        for frame in contents.scan.frames {
            try contents.bytes.withUnsafeBytes { raw in
                try decoder.forEachEntry(in: raw, frame: frame) { entry in
                    switch entry {
                    case .request(let request): entries.append("request \(request.tag.idString) \(request.firstLSN)-\(request.lastLSN)")
                    case .record(let lsn, let record): entries.append("record \(lsn) \(record.value)")
                    }
                }
            }
        }
        #expect(entries == ["record 1 1234605616436508552", "request order-0001 2-4", "record 2 1", "record 3 2",
                            "record 4 3", "record 5 40", "request retry-7f3a 6-6", "record 6 50"])
    }

    /// Today's encoder reproduces the committed version-2 sample: the segment header and the
    /// raw first frame byte for byte, and the lz4 frame's raw payload (records, then the
    /// request section) byte for byte after decompression, since lz4's own output may differ
    /// between library versions. With TALLY_WRITE_SAMPLE set to a path, it writes the sample
    /// there (how the committed file was made).
    @Test func todaysEncoderWritesTheVersion2SampleExactly() throws {
        var bytes = SegmentHeader(nodeID: FixtureSample.node, firstLSN: 1).encoded()
        var encoder = FrameEncoder()
        for (appends, firstLSN) in [(FixtureSample.v2Frames[0], LSN(1)), (FixtureSample.v2Frames[1], LSN(2))] {
            encoder.encode(appends, recordCount: appends.reduce(0) { $0 + $1.records.count }, firstLSN: firstLSN)
            encoder.withFrameBytes { bytes += $0 }
        }
        if let path = ProcessInfo.processInfo.environment["TALLY_WRITE_SAMPLE"] {
            try writeBytes(bytes, to: path)
        }
        let sample = try fileBytes(sampleV2Path)
        #expect(bytes[0..<100] == sample[0..<100], "segment header and the raw first frame")
        #expect(try Self.rawPayload(ofFrameAt: 100, in: bytes) == Self.rawPayload(ofFrameAt: 100, in: sample))
    }

    private static func rawPayload(ofFrameAt offset: Int, in bytes: [UInt8]) throws -> [UInt8] {
        try bytes.withUnsafeBytes { raw in
            let header = FrameHeader(reading: raw, at: offset)
            var out = [UInt8](repeating: 0, count: Int(header.rawLength))
            let payload = UnsafeRawBufferPointer(rebasing: raw[(offset + FrameHeader.sizeBytes)..<(offset + header.frameSizeBytes)])
            let ok = out.withUnsafeMutableBytes { LZ4.decompress(payload, into: $0) }
            try #require(ok && header.isCompressed)
            return out
        }
    }
}
