import Foundation
import Testing
@testable import TallyLog

@Suite struct FormatTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // Continuing across buffers equals one pass.
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let whole = CRC32C.checksum(data)
        let split = data.withUnsafeBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[500...]),
                            continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<500])))
        }
        #expect(whole == split)
    }

    @Test func segmentHeaderRoundTripsAndRejectsDamage() throws {
        let header = SegmentHeader(nodeID: testNode, firstLSN: 42)
        let bytes = header.encoded()
        #expect(bytes.count == SegmentHeader.sizeBytes)
        #expect(try bytes.withUnsafeBytes { try SegmentHeader(decoding: $0) } == header)
        for index in bytes.indices {
            var damaged = bytes
            damaged[index] ^= 0x01
            #expect(throws: SegmentHeader.DecodingError.self) {
                try damaged.withUnsafeBytes { try SegmentHeader(decoding: $0) }
            }
        }
    }

    /// Found by fuzzing (`Fuzz/`, FuzzSegmentFrames; the minimized input is these 40 bytes): a
    /// header whose checksum holds over first LSN 0 decoded as sound, and `Log.open` then
    /// trapped computing the LSN before it (`tally verify` and `tally recover` too).
    static let firstLSNZeroHeader: [UInt8] = [
        0x54, 0x41, 0x4c, 0x4c, 0x59, 0x57, 0x41, 0x4c, 0x02, 0x00, 0x00, 0x00, 0x7a, 0x11, 0xe0, 0x00,
        0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0xbf, 0x38, 0x83, 0x9d,
    ]

    @Test func aSegmentHeaderWithFirstLSNZeroIsRefused() throws {
        #expect(throws: SegmentHeader.DecodingError.zeroFirstLSN) {
            try Self.firstLSNZeroHeader.withUnsafeBytes { try SegmentHeader(decoding: $0) }
        }
        var one = Self.firstLSNZeroHeader
        one[28] = 1
        one.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<36])).littleEndian,
                           toByteOffset: 36, as: UInt32.self)
        }
        #expect(try one.withUnsafeBytes { try SegmentHeader(decoding: $0) }.firstLSN == 1)
    }

    @Test func segmentNamesSortInLogOrder() {
        #expect(SegmentName.fileName(firstLSN: 1) == "00000000000000000001.wal")
        #expect(SegmentName.firstLSN(of: "00000000000000000042.wal") == 42)
        #expect(SegmentName.firstLSN(of: "00000000000000000042.wal.tmp") == nil)
        #expect(SegmentName.firstLSN(of: "0000000000000000004x.wal") == nil)
        #expect(SegmentName.fileName(firstLSN: 9) < SegmentName.fileName(firstLSN: 10))
    }

    @Test func keysOrderLikePostgresUUIDs() {
        let a = LogKey(UUID(uuidString: "00000000-0000-0000-0000-0000000000ff")!)
        let b = LogKey(UUID(uuidString: "00000000-0000-0000-0001-000000000000")!)
        let c = LogKey(UUID(uuidString: "ff000000-0000-0000-0000-000000000000")!)
        #expect(a < b && b < c)
        #expect(c.uuidString == "ff000000-0000-0000-0000-000000000000")
        #expect(LogKey(c.uuid) == c)
    }

    @Test func framesAreCompressedWhenThatIsSmallerAndRawOtherwise() throws {
        var encoder = FrameEncoder()
        // Hot keys compress well.
        let hot = records(512, keys: 4)
        encoder.encode([Append(records: hot)], recordCount: hot.count, firstLSN: 1)
        let hotFrame = encoder.withFrameBytes { Array($0) }
        let hotHeader = hotFrame.withUnsafeBytes { FrameHeader(reading: $0, at: 0) }
        #expect(hotHeader.isCompressed)
        #expect(Int(hotHeader.storedLength) < hot.count * LogRecord.sizeBytes / 2)

        // One record of random bytes does not shrink: stored raw.
        let random = [LogRecord(key: LogKey(high: .random(in: 0...UInt64.max), low: .random(in: 0...UInt64.max)),
                                value: .random(in: 1...Int64.max), arrivalMillis: .random(in: 0...Int64.max))]
        encoder.encode([Append(records: random)], recordCount: 1, firstLSN: 600)
        let rawFrame = encoder.withFrameBytes { Array($0) }
        let rawHeader = rawFrame.withUnsafeBytes { FrameHeader(reading: $0, at: 0) }
        #expect(!rawHeader.isCompressed)
        #expect(rawHeader.storedLength == 32)

        // Both decode back to their records.
        for (frame, expected, first) in [(hotFrame, hot, LSN(1)), (rawFrame, random, LSN(600))] {
            var decoded: [LogRecord] = []
            var decoder = FrameDecoder()
            try frame.withUnsafeBytes { raw in
                let header = try #require(SegmentScanner.validFrame(in: raw, at: 0, minimumLSN: 1, formatVersion: 2))
                #expect(header.firstLSN == first)
                try decoder.forEachRecord(in: raw, frame: FrameLocation(offset: 0, header: header)) { _, record in
                    decoded.append(record)
                }
            }
            #expect(decoded == expected)
        }
    }

    @Test func recordsKeepEveryInt64Value() throws {
        var encoder = FrameEncoder()
        let extremes = [Int64.min, -1, 0, 1, Int64.max].map {
            LogRecord(key: LogKey(high: .max, low: .max), value: $0, arrivalMillis: $0)
        }
        encoder.encode([Append(records: extremes)], recordCount: extremes.count, firstLSN: 7)
        var decoded: [LogRecord] = []
        var decoder = FrameDecoder()
        try encoder.withFrameBytes { raw in
            let header = try #require(SegmentScanner.validFrame(in: raw, at: 0, minimumLSN: 1, formatVersion: 2))
            try decoder.forEachRecord(in: raw, frame: FrameLocation(offset: 0, header: header)) { decoded.append($1) }
        }
        #expect(decoded == extremes)
    }
}
