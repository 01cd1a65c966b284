import Foundation
import Testing

/// The node-identity rules on the real binary: a log and PostgreSQL's checkpoint that
/// disagree about where the node is never lose or double an acknowledged increment. Each
/// scenario is one an operator can cause (a new disk, a restored backup, a moved folder, a
/// restored database, a cloned machine), and each refusal's documented way out is taken.
@Suite(.serialized) struct EndToEndPositionTests {
    static func key() -> String { UUID().uuidString.lowercased() }

    static func checkpointRow(_ node: String) throws -> Int? {
        Int(try Daemon.psql("SELECT lsn FROM tally_checkpoints WHERE node = '\(node)'"))
    }

    /// Sends `count` increments of 1, each of which must be acknowledged.
    static func acknowledge(_ daemon: Daemon, _ key: String, count: Int) throws {
        for index in 0..<count {
            let status = try daemon.increment(key)
            guard status == 200 else { throw ToolError("increment \(index) got \(status): \(daemon.log)") }
        }
    }

    static func stop(_ daemon: Daemon) async throws {
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0, "a clean stop: \(daemon.log)")
    }

    /// Waits for the node's readiness to name `reason`; returns the body it saw.
    @discardableResult
    static func waitForRefusal(_ daemon: Daemon, _ reason: String, seconds: Int = 15) async throws -> String {
        var last = ""
        for _ in 0..<(seconds * 10) {
            let ready = try daemon.get("/readyz")
            last = ready.body
            if ready.status == 503 && ready.body.contains(reason) { return ready.body }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("/readyz never named \(reason); last: \(last)\n\(daemon.log)")
        return last
    }

    @Test func aNodeIdOnANewDataDirectoryContinuesAfterItsCheckpoint() async throws {
        let data = TemporaryDirectory()
        let node = UUID().uuidString.lowercased()
        let key = Self.key()
        let first = try Daemon(dataDirectory: data.path + "/a", extraArguments: ["--node-id", node])
        try await first.waitUntilServing()
        try await first.waitForFirstCheckpoint()
        try Self.acknowledge(first, key, count: 100)
        try await Self.stop(first)
        #expect(try Self.checkpointRow(node) == 100)

        // The old disk is gone; the node keeps its identity on a new one.
        let second = try Daemon(dataDirectory: data.path + "/b", extraArguments: ["--node-id", node])
        try await second.waitUntilServing()
        try await second.waitForFirstCheckpoint()
        try Self.acknowledge(second, key, count: 150)
        try await Self.stop(second)
        #expect(try Daemon.totals([key])[key] == 250, "100 before the new disk and 150 after, none lost")
        #expect(try Self.checkpointRow(node) == 250, "the new log continued at LSN 101")
    }

    @Test func aWalRestoredFromAnOlderBackupRefusesWritesForGoodUntilMovedAside() async throws {
        let data = TemporaryDirectory()
        let directory = data.path + "/node"
        let key = Self.key()
        let first = try Daemon(dataDirectory: directory)
        try await first.waitUntilServing()
        try Self.acknowledge(first, key, count: 10)
        try await Self.stop(first)
        let node = try String(contentsOfFile: directory + "/node-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try FileManager.default.copyItem(atPath: directory + "/wal", toPath: data.path + "/wal-backup")

        let second = try Daemon(dataDirectory: directory)
        try await second.waitUntilServing()
        try Self.acknowledge(second, key, count: 20)
        try await Self.stop(second)
        #expect(try Self.checkpointRow(node) == 30)

        try FileManager.default.removeItem(atPath: directory + "/wal")
        try FileManager.default.copyItem(atPath: data.path + "/wal-backup", toPath: directory + "/wal")
        let restored = try Daemon(dataDirectory: directory)
        try await restored.waitUntilServing()
        try await Self.waitForRefusal(restored, "checkpoint_ahead_of_log")
        #expect(try restored.increment(key) == 503)
        try await Task.sleep(for: .seconds(3))  // three checkpoint intervals: the refusal does not clear itself
        let later = try restored.get("/readyz")
        #expect(later.status == 503 && later.body.contains("checkpoint_ahead_of_log"), "\(later.body)")
        #expect(try restored.increment(key) == 503)
        #expect(try restored.get("/metrics").body.contains(#"tally_node_position_error{kind="checkpoint_ahead_of_log"} 1"#))
        #expect(restored.log.contains("refuses writes"), "logged: \(restored.log)")
        try await Self.stop(restored)
        #expect(try Daemon.totals([key])[key] == 30 && Self.checkpointRow(node) == 30)

        // The documented way out when PostgreSQL's totals are right: move the stale log aside.
        try FileManager.default.moveItem(atPath: directory + "/wal", toPath: directory + "/wal.stale")
        let resumed = try Daemon(dataDirectory: directory)
        try await resumed.waitUntilServing()
        try await resumed.waitForFirstCheckpoint()
        try Self.acknowledge(resumed, key, count: 5)
        try await Self.stop(resumed)
        #expect(try Daemon.totals([key])[key] == 35 && Self.checkpointRow(node) == 35)
    }

    @Test func segmentsMovedIntoASubfolderRefuseTheStart() async throws {
        let data = TemporaryDirectory()
        let directory = data.path + "/node"
        let key = Self.key()
        let daemon = try Daemon(dataDirectory: directory)
        try await daemon.waitUntilServing()
        try Self.acknowledge(daemon, key, count: 5)
        try await daemon.crash()
        let wal = directory + "/wal"
        try FileManager.default.createDirectory(atPath: wal + "/old", withIntermediateDirectories: false)
        for name in try FileManager.default.contentsOfDirectory(atPath: wal) where name.hasSuffix(".wal") {
            try FileManager.default.moveItem(atPath: wal + "/" + name, toPath: wal + "/old/" + name)
        }
        let refused = try Daemon(dataDirectory: directory, port: daemon.port)
        let status = try await refused.waitForExit(seconds: 10)
        #expect(status != nil && status != 0, "serve must not start an empty-looking log over hidden segments")
        #expect(refused.log.contains("subdirectory"), "\(refused.log)")
        #expect(try Tool.run(["verify", directory]).status == 2)

        // The way out: move them back.
        for name in try FileManager.default.contentsOfDirectory(atPath: wal + "/old") {
            try FileManager.default.moveItem(atPath: wal + "/old/" + name, toPath: wal + "/" + name)
        }
        try FileManager.default.removeItem(atPath: wal + "/old")
        let restarted = try Daemon(dataDirectory: directory, port: daemon.port)
        try await restarted.waitUntilServing()
        try await Self.stop(restarted)
        #expect(try Daemon.totals([key])[key] == 5)
    }

    @Test func aCheckpointBehindTheFirstRecordOnDiskIsRefusedWithoutATrap() async throws {
        let data = TemporaryDirectory()
        let directory = data.path + "/node"
        let key = Self.key()
        let daemon = try Daemon(dataDirectory: directory)
        try await daemon.waitUntilServing()
        let node = try String(contentsOfFile: directory + "/node-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        for round in 1...3 {
            try Self.acknowledge(daemon, key, count: 5)
            for _ in 0..<50 where try Self.checkpointRow(node) ?? 0 < round * 5 {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        try await Self.stop(daemon)
        #expect(try Self.checkpointRow(node) == 15)
        let firstOnDisk = try FileManager.default.contentsOfDirectory(atPath: directory + "/wal")
            .filter { $0.hasSuffix(".wal") }.sorted().first.flatMap { UInt64($0.dropLast(4)) }
        try #require((firstOnDisk ?? 0) > 1, "checkpoints deleted the first segments")

        // PostgreSQL restored to before any checkpoint of this node.
        _ = try Daemon.psql("UPDATE tally_checkpoints SET lsn = 0 WHERE node = '\(node)'")
        _ = try Daemon.psql("UPDATE tally_counts SET total = 0 WHERE key = '\(key)'")
        let refused = try Daemon(dataDirectory: directory, port: daemon.port)
        try await refused.waitUntilServing()
        let body = try await Self.waitForRefusal(refused, "records_missing")
        #expect(body.contains("--accept-gap"), "the way out is named: \(body)")
        #expect(try refused.increment(key) == 503)
        kill(refused.pid, SIGTERM)
        let status = try await refused.waitForExit(seconds: 15)
        #expect(status == 0, "a clean stop, not a trap (exit 132 was SIGILL): \(String(describing: status))")

        // recover refuses the same way, and names the flag that accepts the loss.
        let plain = try Tool.run(["recover", directory, "--database-url", Daemon.databaseURL])
        #expect(plain.status == 3 && plain.stderr.contains("--accept-gap"), "\(plain.stdout)\(plain.stderr)")
        let accepted = try Tool.run(["recover", directory, "--database-url", Daemon.databaseURL, "--accept-gap"])
        #expect(accepted.status == 0, "\(accepted.stdout)\(accepted.stderr)")
        #expect(accepted.stdout.contains("accepted gap: LSNs 1-"), "\(accepted.stdout)")
        let resumed = try Daemon(dataDirectory: directory, port: daemon.port)
        try await resumed.waitUntilServing()
        try await resumed.waitForFirstCheckpoint()
        #expect(try resumed.increment(key) == 200)
        try await Self.stop(resumed)
    }

    @Test func twoDataDirectoriesWithOneNodeIdAreCaughtAndTheLoserIsSalvaged() async throws {
        let data = TemporaryDirectory()
        let keysA = (0..<10).map { _ in Self.key() }
        let keysB = (0..<10).map { _ in Self.key() }
        let seed = try Daemon(dataDirectory: data.path + "/a")
        try await seed.waitUntilServing()
        try Self.acknowledge(seed, keysA[0], count: 5)
        try await Self.stop(seed)
        // A cloned machine: the whole data directory, node id and fence included.
        #expect(try Tool.runExternal("/bin/cp", ["-a", data.path + "/a", data.path + "/b"]).status == 0)

        let nodeA = try Daemon(dataDirectory: data.path + "/a")
        let nodeB = try Daemon(dataDirectory: data.path + "/b")
        try await nodeA.waitUntilServing()
        try await nodeB.waitUntilServing()
        let loadA = LoadGenerator(port: nodeA.port, keys: keysA)
        let loadB = LoadGenerator(port: nodeB.port, keys: keysB)
        loadA.start(clients: 4)
        loadB.start(clients: 4)
        var refused: Daemon?
        for _ in 0..<100 where refused == nil {
            try await Task.sleep(for: .milliseconds(100))
            for daemon in [nodeA, nodeB] where try daemon.get("/readyz").body.contains("checkpoint_moved_elsewhere") {
                refused = daemon
            }
        }
        var ledgerA = loadA.stop()
        let ledgerB = loadB.stop()
        ledgerA.acknowledged[keysA[0], default: 0] += 5
        try await Self.stop(nodeA)
        try await Self.stop(nodeB)
        let loser = try #require(refused, "one of the two must notice the other")

        // Its log names where its own, uncounted records start; salvage them under a new id.
        let message = loser.log
        let range = try #require(message.range(of: #"--salvage-from (\d+)"#, options: .regularExpression))
        let from = String(message[range].split(separator: " ").last!)
        let salvaged = try Tool.run(["recover", loser.dataDirectory, "--database-url", Daemon.databaseURL,
                                     "--salvage-from", from, "--as-node", UUID().uuidString])
        #expect(salvaged.status == 0, "\(salvaged.stdout)\(salvaged.stderr)")
        try EndToEndFaultTests.expectInvariant(ledgerA, keys: keysA)
        try EndToEndFaultTests.expectInvariant(ledgerB, keys: keysB)
        #expect(ledgerA.requestsAcknowledged > 0 && ledgerB.requestsAcknowledged > 0)
    }
}
