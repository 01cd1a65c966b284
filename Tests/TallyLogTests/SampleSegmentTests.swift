import Foundation
import Testing
@testable import TallyLog

/// The committed sample segment pins format version 1: if the encoder or decoder drifts,
/// this fails, and `docs/log-format.md` (which walks through the same bytes) must change
/// together with a new version number.
@Suite struct SampleSegmentTests {
    private var samplePath: String {
        Bundle.module.path(forResource: "00000000000000000001", ofType: "wal", inDirectory: "Fixtures/sample-v1")!
    }

    @Test func theCommittedSampleDecodesToItsRecords() throws {
        let contents = try SegmentContents.read(path: samplePath)
        let header = try contents.header.get()
        #expect(header == SegmentHeader(nodeID: FixtureSample.node, firstLSN: 1))
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
        // Segment header and the raw first frame do not depend on lz4's version: byte-exact.
        #expect(written[0..<100] == sample[0..<100])
        // lz4 output may differ between library versions; the records may not.
        let reread = try readAll(dir.path).map(\.1)
        #expect(reread == FixtureSample.batches.flatMap { $0 })
    }
}
