import Foundation
import Testing

/// `tally serve` as a process: started by the test, driven over HTTP with curl, stopped by signal.
@Suite struct ServeTests {
    @Test func sigtermDrainsAndLeavesEveryAcknowledgedIncrementInPostgres() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        let key = UUID().uuidString.lowercased()
        var acknowledged = 0
        for value in 1...25 {
            let status = try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                        "-d", #"{"key":"\#(key)","value":\#(value)}"#, "http://127.0.0.1:\(daemon.port)/increment"])
            if status == "200" { acknowledged += value }
        }
        #expect(acknowledged == 325)
        kill(daemon.process.processIdentifier, SIGTERM)
        let status = try await daemon.waitForExit(seconds: 10)
        #expect(status == 0, "exit within 10 s with status 0: \(daemon.log)")
        #expect(try Daemon.psql("SELECT total FROM tally_counts WHERE key = '\(key)'") == "325",
                "the final checkpoint put every acknowledged increment in PostgreSQL")
        #expect(daemon.log.contains("final checkpoint done"))
    }

    /// With --drain-time, SIGTERM first turns /readyz to 503 while increments are still taken,
    /// so that a balancer checking /readyz moves away before the listener closes.
    @Test func sigtermWithADrainTimeSaysNotReadyBeforeItStopsListening() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--drain-time", "2s"])
        try await daemon.waitUntilServing()
        #expect(try daemon.get("/readyz").status == 200)
        let key = UUID().uuidString.lowercased()
        let signalled = ContinuousClock.now
        kill(daemon.pid, SIGTERM)
        // Within the drain: not ready, with the reason, and still taking increments.
        var readyz = (status: 0, body: "")
        for _ in 0..<20 {
            readyz = try daemon.get("/readyz")
            if readyz.status == 503 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(readyz.status == 503 && readyz.body.contains("draining"), "\(readyz)")
        #expect(try daemon.increment(key, 7) == 200, "a draining node still takes increments")
        #expect(try daemon.get("/healthz").status == 200)
        #expect(ContinuousClock.now - signalled < .milliseconds(1800), "the checks above ran inside the drain")
        let status = try await daemon.waitForExit(seconds: 15)
        #expect(status == 0, "\(daemon.log)")
        #expect(ContinuousClock.now - signalled >= .seconds(2), "the listener stayed open for the drain time")
        #expect(try Daemon.psql("SELECT total FROM tally_counts WHERE key = '\(key)'") == "7")
    }

    @Test func aSecondDaemonOnTheSameDataDirectoryIsRefused() async throws {
        let data = TemporaryDirectory()
        let first = try Daemon(dataDirectory: data.path + "/node")
        try await first.waitUntilServing()
        let second = try Daemon(dataDirectory: data.path + "/node")
        let status = try await second.waitForExit(seconds: 10)
        #expect(status != nil && status != 0)
        #expect(second.log.contains("locked by another Tally process"), "\(second.log)")
        kill(first.process.processIdentifier, SIGTERM)
        #expect(try await first.waitForExit(seconds: 10) == 0)
    }
}
