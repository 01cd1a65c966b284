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
