import Foundation
import Testing
import TallyLog

/// The guarantee on the real binary, broken the way an operator would break it. After every
/// scenario, per key: acknowledged ≤ PostgreSQL total ≤ acknowledged + unanswered, and a
/// refused request is never counted (it is in neither bound).
@Suite(.serialized) struct EndToEndFaultTests {
    static func keys(_ count: Int) -> [String] { (0..<count).map { _ in UUID().uuidString.lowercased() } }

    /// Checks the invariant for every key of `ledger`.
    static func expectInvariant(_ ledger: LoadGenerator.Ledger, keys: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let totals = try Daemon.totals(keys)
        for key in keys {
            let acknowledged = ledger.acknowledged[key] ?? 0
            let unanswered = ledger.unanswered[key] ?? 0
            let total = totals[key] ?? 0
            #expect(acknowledged <= total && total <= acknowledged + unanswered,
                    "key \(key): acknowledged \(acknowledged) ≤ total \(total) ≤ acknowledged + unanswered \(acknowledged + unanswered)",
                    sourceLocation: sourceLocation)
        }
    }

    /// Waits until PostgreSQL holds at least what was acknowledged (checkpoints are async).
    static func waitForCheckpoint(_ ledger: LoadGenerator.Ledger, keys: [String], seconds: Int = 15) async throws {
        for _ in 0..<(seconds * 10) {
            let totals = try Daemon.totals(keys)
            if keys.allSatisfy({ (totals[$0] ?? 0) >= (ledger.acknowledged[$0] ?? 0) }) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test func killNineUnderLoadThenRestartLosesNothingAcknowledged() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(40)
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 16)
        try await Task.sleep(for: .milliseconds(2_500))  // at least two checkpoints under load
        try await daemon.crash()
        let ledger = load.stop()
        #expect(ledger.requestsAcknowledged > 100, "the load generator made progress")

        let restarted = try Daemon(dataDirectory: data.path + "/node", port: daemon.port)
        try await restarted.waitUntilServing()
        try await Self.waitForCheckpoint(ledger, keys: keys)
        try restarted.expectReadsAgreeWithPostgres(keys)
        kill(restarted.pid, SIGTERM)
        #expect(try await restarted.waitForExit(seconds: 10) == 0)
        try Self.expectInvariant(ledger, keys: keys)
    }

    @Test func killNineRepeatedlyAtRandomInstants() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(20)
        var ledger = LoadGenerator.Ledger()
        let port = Daemon.freePort()
        let rounds = Int(ProcessInfo.processInfo.environment["TALLY_SOAK_ROUNDS"] ?? "") ?? 20
        for _ in 0..<rounds {
            let daemon = try Daemon(dataDirectory: data.path + "/node", port: port)
            try await daemon.waitUntilServing()
            let load = LoadGenerator(port: port, keys: keys)
            load.start(clients: 8)
            // Random instants up to 1.5 s: some before, some during, some after a checkpoint.
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...1_500)))
            try await daemon.crash()
            ledger.merge(load.stop())
        }
        let final = try Daemon(dataDirectory: data.path + "/node", port: port)
        try await final.waitUntilServing()
        try await Self.waitForCheckpoint(ledger, keys: keys)
        kill(final.pid, SIGTERM)
        #expect(try await final.waitForExit(seconds: 10) == 0)
        try Self.expectInvariant(ledger, keys: keys)
    }

    @Test func aTornLastSegmentIsCutAndWhatSurvivesIsCountedExactly() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(10)
        // Nothing may be checkpointed before the crash: the startup pass (which runs at once
        // and finds nothing) is awaited, and the next one is 60 s away.
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--checkpoint-interval", "60s"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 4)
        try await Task.sleep(for: .milliseconds(800))
        try await daemon.crash()
        _ = load.stop()

        // Tear the last segment at a random offset inside its frames.
        let wal = data.path + "/node/wal"
        let last = try #require(try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted().last)
        let path = wal + "/" + last
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        try #require(size > SegmentHeader.sizeBytes + 1)
        let cut = Int.random(in: (SegmentHeader.sizeBytes + 1)..<size)
        let frameStarts = Set(try SegmentContents.read(path: wal + "/" + last).scan.frames.map(\.offset))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(cut))
        try handle.close()

        // What the tools say survives is exactly what PostgreSQL must end up with.
        let dump = try Tool.run(["dump", "--json", data.path + "/node"])
        var surviving: [String: Int] = [:]
        for line in dump.lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["type"] as? String == "record", let key = object["key"] as? String,
                  let value = object["value"] as? Int else { continue }
            surviving[key, default: 0] += value
        }
        let restarted = try Daemon(dataDirectory: data.path + "/node", port: daemon.port)
        try await restarted.waitUntilServing()
        kill(restarted.pid, SIGTERM)  // the final checkpoint applies everything
        #expect(try await restarted.waitForExit(seconds: 10) == 0)
        if !frameStarts.contains(cut) {
            #expect(restarted.log.contains("torn tail"), "the daemon warns about the cut: \(restarted.log)")
        }
        let totals = try Daemon.totals(keys)
        for key in keys { #expect(totals[key] == (surviving[key] ?? 0), "key \(key)") }
    }

    @Test func aFlippedByteInAMiddleFrameStopsTheDaemonAndDeletesNothing() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(5)
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--checkpoint-interval", "60s"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()  // the startup pass; the next one is 60 s away
        for (index, key) in keys.enumerated() {
            for _ in 0..<3 {
                try Daemon.curl(["-s", "-X", "POST", "-d", #"{"key":"\#(key)","value":\#(index + 1)}"#,
                                 "http://127.0.0.1:\(daemon.port)/increment"])
            }
        }
        try await daemon.crash()
        let wal = data.path + "/node/wal"
        let segment = wal + "/" + (try FileManager.default.contentsOfDirectory(atPath: wal).filter { $0.hasSuffix(".wal") }.sorted().first!)
        let frames = try SegmentContents.read(path: segment).scan.frames
        try #require(frames.count >= 3)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[frames[1].offset + FrameHeader.sizeBytes] ^= 0x20
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let before = try FileManager.default.contentsOfDirectory(atPath: wal).sorted()

        let refused = try Daemon(dataDirectory: data.path + "/node", port: daemon.port)
        let status = try await refused.waitForExit(seconds: 10)
        #expect(status != nil && status != 0, "serve must refuse a corrupt log")
        #expect(refused.log.contains("tally verify") && refused.log.contains("tally recover"), "\(refused.log)")
        #expect(try Tool.run(["verify", data.path + "/node"]).status == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: wal).sorted() == before, "nothing deleted")
        #expect(try Data(contentsOf: URL(fileURLWithPath: segment)) == Data(bytes), "nothing repaired")
    }

    @Test func killNineBeforeAnyCheckpointThenOnlyRecover() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(10)
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--checkpoint-interval", "60s"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()  // the startup pass; the next one is 60 s away
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 8)
        try await Task.sleep(for: .milliseconds(1_000))
        let ledger = load.stop()  // every request answered before the crash
        try await daemon.crash()
        #expect(ledger.requestsUnanswered == 0)

        let first = try Tool.run(["recover", data.path + "/node", "--database-url", Daemon.databaseURL])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let totals = try Daemon.totals(keys)
        for key in keys { #expect(totals[key] == (ledger.acknowledged[key] ?? 0), "key \(key)") }

        let second = try Tool.run(["recover", data.path + "/node", "--database-url", Daemon.databaseURL])
        #expect(second.status == 0)
        #expect(second.stdout.contains("applied: nothing"), "\(second.stdout)")
        #expect(try Daemon.totals(keys) == totals)
    }

    @Test func sigtermUnderLoadExitsCleanlyWithEverythingInPostgres() async throws {
        let data = TemporaryDirectory()
        let keys = Self.keys(30)
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 16)
        try await Task.sleep(for: .milliseconds(1_500))
        kill(daemon.pid, SIGTERM)
        let status = try await daemon.waitForExit(seconds: 10)
        let ledger = load.stop()
        #expect(status == 0, "exit 0 within 10 s: \(daemon.log)")
        // At exit, without any restart, PostgreSQL already holds every acknowledged increment.
        try Self.expectInvariant(ledger, keys: keys)
    }
}
