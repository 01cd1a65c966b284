import Foundation
import Testing
import TallyLog

/// `tally dump` and `tally verify` on real logs, through the real binary.
@Suite struct LogToolTests {
    static let node = LogKey(high: 0xAAAA, low: 0xBBBB)
    static let hot = LogKey(UUID(uuidString: "0b5e55ed-0000-4000-8000-00000000c0de")!)

    /// A data directory whose log (in `wal/`) has three frames: LSN 1–4, 5–12 (hot key), 13–14.
    private func makeDataDirectory() async throws -> TemporaryDirectory {
        let data = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: data.path + "/wal", nodeID: Self.node))
        try await log.append((0..<4).map { LogRecord(key: LogKey(high: UInt64($0), low: 1), value: 10, arrivalMillis: 1_764_000_000_000) })
        try await log.append((0..<8).map { _ in LogRecord(key: Self.hot, value: 3, arrivalMillis: 1_764_000_000_500) })
        try await log.append((0..<2).map { LogRecord(key: LogKey(high: UInt64($0), low: 1), value: 1, arrivalMillis: 1_764_000_001_000) })
        await log.close()
        return data
    }

    private var segmentName: String { SegmentName.fileName(firstLSN: 1) }

    private func jsonLines(_ run: ToolRun) throws -> [[String: Any]] {
        try run.lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    @Test func dumpListsEveryRecordAsJSONLinesFromTheDataDirectory() async throws {
        let data = try await makeDataDirectory()
        let run = try Tool.run(["dump", "--json", data.path])
        #expect(run.status == 0, "\(run.stderr)")
        let records = try jsonLines(run).filter { $0["type"] as? String == "record" }
        #expect(records.map { $0["lsn"] as? Int } == Array(1...14))
        #expect(records[4]["key"] as? String == Self.hot.uuidString)
        #expect(records[4]["value"] as? Int == 3)
        #expect(records[0]["time"] as? String == "2025-11-24T16:00:00.000Z")
        #expect(records[0]["segment"] as? String == segmentName)
        let frames = try jsonLines(run).filter { $0["type"] as? String == "frame" }
        #expect(frames.count == 3)
        #expect(frames[1]["compressed"] as? Bool == true)
    }

    /// A record's arrival time is whatever its segment holds: `dump` printed it with a floor
    /// division that overflowed, and trapped, below Int64.min + 999 ms.
    @Test func dumpPrintsAnyArrivalTime() async throws {
        let data = TemporaryDirectory()
        let log = try Log.open(LogConfiguration(directory: data.path + "/wal", nodeID: Self.node))
        try await log.append([Int64.min, -1, 0, Int64.max].map { LogRecord(key: Self.hot, value: 1, arrivalMillis: $0) })
        await log.close()
        let run = try Tool.run(["dump", "--json", data.path])
        #expect(run.status == 0, "\(run.stderr)")
        let times = try jsonLines(run).filter { $0["type"] as? String == "record" }.map { $0["time"] as? String }
        #expect(times.count == 4 && !times.contains(nil))
        #expect(times[1] == "1969-12-31T23:59:59.999Z")
        #expect(times[2] == "1970-01-01T00:00:00.000Z")
    }

    /// The fuzz finding of TallyLogTests' `FormatTests.firstLSNZeroHeader`, through the binary:
    /// `verify` computed the segment's last LSN as first LSN − 1 and trapped.
    @Test func verifyReportsAHeaderWithFirstLSNZeroAsCorruption() throws {
        let data = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: data.path + "/wal", withIntermediateDirectories: true)
        let header: [UInt8] = [
            0x54, 0x41, 0x4c, 0x4c, 0x59, 0x57, 0x41, 0x4c, 0x02, 0x00, 0x00, 0x00, 0x7a, 0x11, 0xe0, 0x00,
            0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0xbf, 0x38, 0x83, 0x9d,
        ]
        try Data(header).write(to: URL(fileURLWithPath: data.path + "/wal/" + SegmentName.fileName(firstLSN: 0)))
        let run = try Tool.run(["verify", data.path])
        #expect(run.status == 2, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("first LSN 0"))
    }

    @Test func dumpFiltersByLSNAndKeyAndPrintsStats() async throws {
        let data = try await makeDataDirectory()
        let segment = data.path + "/wal/" + segmentName
        let fromLSN = try Tool.run(["dump", "--from-lsn", "12", segment])
        #expect(fromLSN.lines.filter { $0.hasPrefix(segmentName) }.count == 3)

        let byKey = try Tool.run(["dump", "--json", "--key", Self.hot.uuidString, data.path])
        #expect(try jsonLines(byKey).count == 8)

        let stats = try Tool.run(["dump", "--stats", data.path])
        #expect(stats.status == 0)
        #expect(stats.stdout.contains("records         14"))
        #expect(stats.stdout.contains("distinct keys   5"))
        #expect(stats.stdout.contains("frames          3"))

        let badKey = try Tool.run(["dump", "--key", "not-a-uuid", data.path])
        #expect(badKey.status != 0)
        #expect(badKey.stderr.contains("UUID"))
    }

    @Test func dumpReportsABadFrameAndGoesOnWhileVerifyNamesIt() async throws {
        let data = try await makeDataDirectory()
        let path = data.path + "/wal/" + segmentName
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let frames = try SegmentContents.read(path: path).scan.frames
        bytes[frames[1].offset + 30] ^= 0x55  // a payload byte of the middle frame
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let dump = try Tool.run(["dump", "--json", data.path])
        #expect(dump.status == 1)
        let lines = try jsonLines(dump)
        let damage = try #require(lines.first { $0["type"] as? String == "damage" })
        #expect(damage["offset"] as? Int == frames[1].offset)
        #expect(damage["expected_lsn"] as? Int == 5)
        let lsns = lines.filter { $0["type"] as? String == "record" }.compactMap { $0["lsn"] as? Int }
        #expect(lsns == [1, 2, 3, 4, 13, 14], "records after the bad frame are still listed")

        let verify = try Tool.run(["verify", data.path])
        #expect(verify.status == 2)
        #expect(verify.stdout.contains("corruption: \(segmentName) offset \(frames[1].offset) (LSN 5)"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(bytes), "read-only")
    }

    @Test func verifyTellsASoundLogFromATornTail() async throws {
        let data = try await makeDataDirectory()
        let sound = try Tool.run(["verify", data.path])
        #expect(sound.status == 0)
        #expect(sound.stdout.contains("log is sound: 1 segments, 14 records, next LSN 15"))

        let path = data.path + "/wal/" + segmentName
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: try handle.seekToEnd() - 5)
        try handle.close()
        let torn = try Tool.run(["verify", data.path])
        #expect(torn.status == 1)
        #expect(torn.stdout.contains("torn tail: \(segmentName)"))
    }

    @Test func theToolsReadALogThatADaemonHoldsLocked() async throws {
        let data = try await makeDataDirectory()
        let log = try Log.open(LogConfiguration(directory: data.path + "/wal", nodeID: Self.node))
        try await log.append(LogRecord(key: Self.hot, value: 1, arrivalMillis: 0))
        let dump = try Tool.run(["dump", "--stats", data.path])
        #expect(dump.stdout.contains("records         15"))
        #expect(try Tool.run(["verify", data.path]).status == 0)
        await log.close()
    }

    @Test func aPathWithoutALogIsAClearError() throws {
        let empty = TemporaryDirectory()
        let run = try Tool.run(["verify", empty.path])
        #expect(run.status != 0)
        #expect(run.stderr.contains("no log segments"))
    }
}
