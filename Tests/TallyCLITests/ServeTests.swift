import Foundation
import Testing

/// `tally serve` as a process: started by the test, driven over HTTP with curl, stopped by signal.
@Suite struct ServeTests {
    static var databaseURL: String {
        guard let url = ProcessInfo.processInfo.environment["TALLY_TEST_DATABASE_URL"] else {
            fatalError("TALLY_TEST_DATABASE_URL is not set: run the tests with `make test`")
        }
        return url
    }

    /// A free loopback port (bound and released; the daemon binds it right after).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, length) }
        }
        withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    final class Daemon {
        let process = Process()
        let port: Int
        let logPath: String

        init(dataDirectory: String, extraArguments: [String] = []) throws {
            port = ServeTests.freePort()
            logPath = dataDirectory + ".log"
            FileManager.default.createFile(atPath: logPath, contents: nil)
            process.executableURL = URL(fileURLWithPath: Tool.path)
            process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory,
                                 "--database-url", ServeTests.databaseURL, "--checkpoint-interval", "1s"] + extraArguments
            let log = FileHandle(forWritingAtPath: logPath)!
            process.standardOutput = log
            process.standardError = log
            try process.run()
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        func waitUntilServing() async throws {
            for _ in 0..<100 where process.isRunning {
                if try curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/healthz"]) == "200" { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("the daemon did not start: \(log)")
        }

        /// Waits at most `seconds` for exit; kills it (and records a failure) past that.
        func waitForExit(seconds: Int) async throws -> Int32? {
            for _ in 0..<(seconds * 10) {
                if !process.isRunning { return process.terminationStatus }
                try await Task.sleep(for: .milliseconds(100))
            }
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            return nil
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(atPath: logPath)
        }
    }

    @discardableResult
    static func curl(_ arguments: [String]) throws -> String {
        try Tool.runExternal("/usr/bin/curl", ["--max-time", "5"] + arguments).stdout
    }

    static func psql(_ sql: String) throws -> String {
        try Tool.runExternal("/usr/bin/psql", [databaseURL, "-Atc", sql]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func sigtermDrainsAndLeavesEveryAcknowledgedIncrementInPostgres() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        let key = UUID().uuidString.lowercased()
        var acknowledged = 0
        for value in 1...25 {
            let status = try Self.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                        "-d", #"{"key":"\#(key)","value":\#(value)}"#, "http://127.0.0.1:\(daemon.port)/increment"])
            if status == "200" { acknowledged += value }
        }
        #expect(acknowledged == 325)
        kill(daemon.process.processIdentifier, SIGTERM)
        let status = try await daemon.waitForExit(seconds: 10)
        #expect(status == 0, "exit within 10 s with status 0: \(daemon.log)")
        #expect(try Self.psql("SELECT total FROM tally_counts WHERE key = '\(key)'") == "325",
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
