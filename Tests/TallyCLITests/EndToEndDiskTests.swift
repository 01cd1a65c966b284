import Foundation
import Testing

/// The disk itself failing under a running daemon, through faultfs: a full disk is waited
/// out without a restart; a failed fdatasync ends the process non-zero, and the restart
/// recovers. After each, per key: acknowledged ≤ PostgreSQL total ≤ acknowledged + unanswered.
@Suite(.serialized) struct EndToEndDiskTests {
    static func post(_ daemon: Daemon, _ key: String) throws -> (status: Int, headers: String) {
        let headers = try Daemon.curl(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "-d",
                                       #"{"key":"\#(key)","value":1}"#, "http://127.0.0.1:\(daemon.port)/increment"])
        let status = Int(headers.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, headers.lowercased())
    }

    static func waitFor(seconds: Int, _ what: String, _ condition: () throws -> Bool) async throws {
        for _ in 0..<(seconds * 10) {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("not within \(seconds) s: \(what)")
    }

    @Test func aFullDiskGets503AndWritesResumeWhenSpaceReturnsWithoutARestart() async throws {
        let disk = try await FaultyDisk()
        let keys = EndToEndFaultTests.keys(20)
        let daemon = try Daemon(dataDirectory: disk.mountPoint + "/node", logBeside: disk.backing.path)
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 8)
        try await Task.sleep(for: .seconds(1))

        try disk.set("enospc")
        try await Self.waitFor(seconds: 5, "/readyz says disk_full") { try daemon.get("/readyz").body.contains("disk_full") }
        let refused = try Self.post(daemon, keys[0])
        #expect(refused.status == 503 && refused.headers.contains("retry-after:"), "\(refused)")
        #expect(try daemon.get("/metrics").body.contains(#"tally_log_stopped{reason="disk_full"} 1"#))
        // Checkpoints go on while the disk is full (they are what frees space in real life):
        // the fence is overwritten in place, segments are deleted.
        let completed = try daemon.get("/metrics").body.split(separator: "\n")
            .first { $0.hasPrefix("tally_checkpoints_completed ") }.flatMap { Double($0.split(separator: " ").last!) } ?? 0
        try await daemon.waitForMetric("tally_checkpoints_completed", seconds: 10) { $0 >= completed + 2 }
        #expect(disk.counter("injected_write_enospc") + disk.counter("injected_create_enospc") > 0)

        try disk.set("ok")
        try await Self.waitFor(seconds: 5, "a 200 again, without a restart") { try Self.post(daemon, keys[1]).status == 200 }
        try await Task.sleep(for: .seconds(1))
        var ledger = load.stop()
        // The probes of this test: counted as unanswered (the invariant allows both outcomes).
        ledger.unanswered[keys[0], default: 0] += 1000
        ledger.unanswered[keys[1], default: 0] += 1000
        #expect(daemon.process.isRunning, "the daemon never stopped")
        #expect((ledger.refusedByStatus[503] ?? 0) > 0, "the full disk was answered with 503")
        #expect(ledger.refusedByStatus.keys.allSatisfy { $0 == 503 }, "\(ledger.refusedByStatus)")
        #expect(daemon.log.contains("disk full") && daemon.log.contains("disk space returned"))

        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 10) == 0)
        try EndToEndFaultTests.expectInvariant(ledger, keys: keys)
        // Nothing acknowledged is missing once the final checkpoint ran.
        let totals = try Daemon.totals(keys)
        for key in keys { #expect((totals[key] ?? 0) >= (ledger.acknowledged[key] ?? 0)) }
    }

    @Test func aFailedFdatasyncEndsTheDaemonNonZeroAndTheRestartRecovers() async throws {
        let disk = try await FaultyDisk()
        let keys = EndToEndFaultTests.keys(20)
        let daemon = try Daemon(dataDirectory: disk.mountPoint + "/node", logBeside: disk.backing.path)
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 8)
        try await Task.sleep(for: .seconds(1))

        try disk.set("eio-fsync-files")
        let status = try await daemon.waitForExit(seconds: 15)
        let ledger = load.stop()
        #expect(status != nil && status != 0, "exits non-zero by itself (a supervisor restarts it): \(String(describing: status))")
        #expect(daemon.log.contains("stopped after a disk error"), "\(daemon.log.suffix(2_000))")
        #expect(disk.counter("injected_fsync_eio") > 0)
        #expect(ledger.requestsAcknowledged > 0)

        try disk.set("ok")
        let restarted = try Daemon(dataDirectory: disk.mountPoint + "/node", port: daemon.port, logBeside: disk.backing.path)
        try await restarted.waitUntilServing()
        try await EndToEndFaultTests.waitForCheckpoint(ledger, keys: keys)
        #expect(try Self.post(restarted, keys[0]).status == 200, "the restarted daemon takes writes")
        kill(restarted.pid, SIGTERM)
        #expect(try await restarted.waitForExit(seconds: 10) == 0)
        var withProbe = ledger
        withProbe.acknowledged[keys[0], default: 0] += 1
        try EndToEndFaultTests.expectInvariant(withProbe, keys: keys)
    }
}
