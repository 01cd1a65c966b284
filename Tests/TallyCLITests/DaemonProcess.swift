import Foundation
import Testing

/// A `tally serve` process started by a test, on a free loopback port, with its output in a
/// file (a pipe would be held open by nothing here, but a file survives the process for the
/// test's messages). Killed with SIGKILL if a test forgets it.
final class Daemon {
    let process = Process()
    let port: Int
    let logPath: String
    let dataDirectory: String

    /// - Parameter logBeside: where the daemon's output file goes (beside the data
    ///   directory by default; elsewhere when that is on a disk a test makes fail).
    init(dataDirectory: String, port: Int? = nil, databaseURL: String = Daemon.databaseURL,
         extraArguments: [String] = [], logBeside: String? = nil) throws {
        self.dataDirectory = dataDirectory
        self.port = port ?? Daemon.freePort()
        logPath = (logBeside ?? dataDirectory) + ".\(UUID().uuidString.prefix(8)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Tool.path)
        process.arguments = ["serve", "--listen", "127.0.0.1:\(self.port)", "--data-dir", dataDirectory,
                             "--database-url", databaseURL, "--checkpoint-interval", "1s"] + extraArguments
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Resident memory of the daemon, from /proc.
    var residentBytes: Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }
    var pid: Int32 { process.processIdentifier }

    func waitUntilServing() async throws {
        for _ in 0..<150 where process.isRunning {
            if try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/healthz"]) == "200" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the daemon did not start: \(log)")
    }

    /// `GET path` on the daemon: status code and body.
    func get(_ path: String) throws -> (status: Int, body: String) {
        let output = try Daemon.curl(["-s", "-w", "\n%{http_code}", "http://127.0.0.1:\(port)\(path)"])
        let status = Int(output.split(separator: "\n").last ?? "") ?? 0
        return (status, String(output.dropLast(String(status).count + 1)))
    }

    /// `POST /increment` of `value` to `key`: the status code (0 without an answer).
    @discardableResult
    func increment(_ key: String, _ value: Int = 1) throws -> Int {
        Int(try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d",
                             #"{"key":"\#(key)","value":\#(value)}"#, "http://127.0.0.1:\(port)/increment"])) ?? 0
    }

    /// Waits until a metric line of `/metrics` satisfies `predicate` (e.g. the first
    /// checkpoint pass is done), at most `seconds`.
    func waitForMetric(_ name: String, seconds: Int = 15, _ predicate: (Double) -> Bool) async throws {
        for _ in 0..<(seconds * 10) {
            let text = try get("/metrics").body
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + " ") }),
               let value = Double(line.split(separator: " ").last ?? ""), predicate(value) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(name) never reached the expected value: \(log)")
    }

    /// Waits until the startup pass has read the node's checkpoint (it runs at once).
    func waitForFirstCheckpoint() async throws {
        try await waitForMetric("tally_checkpoints_completed") { $0 >= 1 }
    }

    /// Waits at most `seconds` for exit; kills it (and returns nil) past that.
    func waitForExit(seconds: Int) async throws -> Int32? {
        for _ in 0..<(seconds * 10) {
            if !process.isRunning { return process.terminationStatus }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGKILL)
        return nil
    }

    /// kill -9, and wait until it is gone.
    func crash() async throws {
        kill(pid, SIGKILL)
        _ = try await waitForExit(seconds: 10)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: logPath)
    }

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

    @discardableResult
    static func curl(_ arguments: [String]) throws -> String {
        try Tool.runExternal("/usr/bin/curl", ["--max-time", "5"] + arguments).stdout
    }

    static func psql(_ sql: String, databaseURL: String = Daemon.databaseURL) throws -> String {
        try Tool.runExternal("/usr/bin/psql", [databaseURL, "-Atc", sql]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// PostgreSQL's totals for `keys` (0 for a key without a row). Every read also checks
    /// the daily invariant: a key's total is the sum of its daily totals (plus what was
    /// counted before daily totals existed), since both are written in one transaction.
    static func totals(_ keys: [String], databaseURL: String = Daemon.databaseURL,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Int] {
        let list = keys.map { "'\($0)'" }.joined(separator: ",")
        let query = """
            SELECT c.key, c.total, c.undated + coalesce((SELECT sum(d.total) FROM tally_daily d WHERE d.key = c.key), 0)
            FROM tally_counts c WHERE c.key IN (\(list))
            """
        let rows = try Tool.runExternal("/usr/bin/psql", [databaseURL, "-Atc", query])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var totals = Dictionary(uniqueKeysWithValues: keys.map { ($0, 0) })
        for row in rows.split(separator: "\n") {
            let parts = row.split(separator: "|")
            guard parts.count == 3 else { continue }
            totals[String(parts[0])] = Int(parts[1]) ?? -1
            #expect(parts[1] == parts[2], "key \(parts[0]): total \(parts[1]) but its days sum to \(parts[2])",
                    sourceLocation: sourceLocation)
        }
        return totals
    }

    /// `GET /counts/{key}` on this daemon agrees with PostgreSQL for each key once nothing
    /// is pending.
    func expectReadsAgreeWithPostgres(_ keys: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let totals = try Daemon.totals(keys, sourceLocation: sourceLocation)
        for key in keys {
            let read = try get("/counts/\(key)")
            let body = (try? JSONSerialization.jsonObject(with: Data(read.body.utf8))) as? [String: Any] ?? [:]
            #expect(read.status == 200 && body["pending"] as? Int == 0 && body["total"] as? Int == totals[key],
                    "key \(key): GET /counts says \(read.body), PostgreSQL \(totals[key] ?? -1)", sourceLocation: sourceLocation)
        }
    }
}

/// A PostgreSQL of a test's own, so that stopping it disturbs no other test.
final class PrivatePostgres {
    let directory = TemporaryDirectory()
    private(set) var url = ""
    private(set) var port = 0
    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/scripts/pg-cluster.sh"

    init() throws {
        try start()
    }

    /// Starts (or restarts, on the same port) the server.
    func start() throws {
        let output = directory.path + "/start.out"
        let status = system("\(Self.script) start \(directory.path)/pg \(port == 0 ? "" : String(port)) > \(output) 2>&1 < /dev/null")
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("postgresql://") }) else {
            throw ToolError("private PostgreSQL did not start: \(text)")
        }
        url = String(line)
        port = Int(url.split(separator: ":").last!.split(separator: "/").first!)!
    }

    /// Stops it the way a crash would (immediate mode: no checkpoint, connections cut).
    func stopImmediately() {
        _ = system("PG_STOP_MODE=immediate \(Self.script) stop \(directory.path)/pg > /dev/null 2>&1 < /dev/null")
    }

    deinit {
        stopImmediately()
    }
}
