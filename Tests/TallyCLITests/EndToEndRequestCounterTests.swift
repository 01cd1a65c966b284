import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// The example app (`tally-example serve`, TallyRequestCounter in front of its routes) under
/// concurrent load against the real daemon: after the app's graceful stop and a checkpoint,
/// the daily report has exactly the requests sent per route, each under its route's name.
@Suite(.serialized) struct EndToEndRequestCounterTests {
    static var examplePath: String {
        URL(fileURLWithPath: Tool.path).deletingLastPathComponent().appendingPathComponent("tally-example").path
    }

    @Test func theDailyReportEqualsTheRequestsPerRoute() async throws {
        let postgres = try PrivatePostgres()  // the report lists every key of the day: a database of its own
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url)
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()

        let appPort = Daemon.freePort()
        let app = Process()
        app.executableURL = URL(fileURLWithPath: Self.examplePath)
        app.arguments = ["serve", "--listen", "127.0.0.1:\(appPort)", "--tally-url", "http://127.0.0.1:\(daemon.port)"]
        let appLog = data.path + "/app.log"
        _ = FileManager.default.createFile(atPath: appLog, contents: nil)
        app.standardOutput = FileHandle(forWritingAtPath: appLog)
        app.standardError = FileHandle(forWritingAtPath: appLog)
        try app.run()
        defer { if app.isRunning { kill(app.processIdentifier, SIGKILL) } }
        // Wait until it serves: the probe that succeeds is a request it counts too.
        var probes = 0
        while try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(appPort)/"]) != "200" {
            probes += 1
            #expect(probes < 100, "the example app did not start")
            if probes >= 100 { return }
            try await Task.sleep(for: .milliseconds(100))
        }

        // Routes with ids drawn at random: one counter per template, whatever the ids.
        let routes: [(name: String, method: HTTPMethod, path: @Sendable (Int) -> String)] = [
            ("GET /users/{id}", .GET, { "/users/\($0)" }),
            ("GET /users/{id}/orders", .GET, { "/users/\($0)/orders" }),
            ("POST /users", .POST, { _ in "/users" }),
            ("DELETE /users/{id}", .DELETE, { "/users/\($0)" }),
            ("GET /", .GET, { _ in "/" }),
            ("GET (unmatched)", .GET, { "/no/such/\($0)" }),
        ]
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        var sent = ["GET /": 1]
        try await withThrowingTaskGroup(of: [String: Int].self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var mine = [String: Int]()
                    for _ in 0..<150 {
                        let route = routes.randomElement()!
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(appPort)" + route.path(Int.random(in: 1...1_000_000)))
                        request.method = route.method
                        let response = try await http.execute(request, timeout: .seconds(10))
                        _ = try await response.body.collect(upTo: 1 << 16)
                        mine[route.name, default: 0] += 1
                    }
                    return mine
                }
            }
            for try await counts in group { sent.merge(counts, uniquingKeysWith: +) }
        }
        try await http.shutdown()

        kill(app.processIdentifier, SIGTERM)  // the client flushes before the app exits
        for _ in 0..<100 where app.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!app.isRunning && app.terminationStatus == 0,
                "the app stops cleanly: \((try? String(contentsOfFile: appLog, encoding: .utf8)) ?? "")")
        kill(daemon.pid, SIGTERM)  // the final checkpoint
        #expect(try await daemon.waitForExit(seconds: 15) == 0)

        let day = String(ISO8601DateFormatter().string(from: Date()).prefix(10))
        let report = try Tool.run(["report", "--database-url", postgres.url, "--day", day, "--format", "csv"])
        #expect(report.status == 0, "\(report.stderr)")
        var reported = [String: Int]()
        for line in report.lines.dropFirst() {
            let fields = line.split(separator: ",", maxSplits: 3, omittingEmptySubsequences: false)
            guard fields.count == 4 else { continue }
            #expect(!fields[3].isEmpty, "every key has its name: \(line)")
            reported[String(fields[3])] = Int(fields[2])
            // The key is the UUIDv5 of the name, as `tally key` prints it.
            let key = try Tool.run(["key", String(fields[3])]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(key == String(fields[1]), "\(line)")
        }
        #expect(reported == sent, "report \(reported) vs requests sent \(sent)")
        let requests: Int = sent.values.reduce(0, +)
        #expect(requests == 2_401, "16 × 150 requests and the probe")
    }

    @Test func keysOfNamesAndNamingAKey() throws {
        let printed = try Tool.run(["key", "GET /users/{id}"])
        #expect(printed.status == 0 && printed.stdout == "ccb7b5d9-cef9-5d9b-955e-46cd2efda614\n")
        #expect(try Tool.run(["key", ""]).status != 0, "an empty name has no key")
    }

    @Test func putKeysStoresANameTheReportShows() async throws {
        // A PostgreSQL of its own: the day's report then holds this one key (a shared
        // database holds every other test's keys of the day, past any page size).
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url)
        try await daemon.waitUntilServing()
        let key = UUID().uuidString.lowercased()
        func put(_ body: String) throws -> (status: Int, body: String) {
            let output = try Daemon.curl(["-s", "-w", "\n%{http_code}", "-X", "PUT", "-H", "Content-Type: application/json",
                                          "-d", body, "http://127.0.0.1:\(daemon.port)/keys/\(key)"])
            let status = Int(output.split(separator: "\n").last ?? "") ?? 0
            return (status, String(output.dropLast(String(status).count + 1)))
        }
        let stored = try put(#"{"name":"GET /orders/{id}"}"#)
        #expect(stored.status == 200 && stored.body == #"{"key":"\#(key)","name":"GET /orders/{id}"}"#, "\(stored)")
        #expect(try put(#"{"name":"GET /orders/{id}"}"#).status == 200, "again: idempotent")
        #expect(try put(#"{"name":""}"#).status == 400)
        #expect(try put(#"{"name":"x","other":1}"#).status == 400)
        #expect(try put(#"{"name":"\#(String(repeating: "x", count: 201))"}"#).status == 400)
        #expect(try put(#"{"name":"a\u0001b"}"#).status == 400)
        #expect(try put("not json").status == 400)
        #expect(try Daemon.psql("SELECT name FROM tally_key_names WHERE key = '\(key)'", databaseURL: postgres.url) == "GET /orders/{id}")
        #expect(try daemon.increment(key) == 200)
        try await daemon.waitForMetric("tally_checkpoints_completed") { $0 >= 2 }
        try await Task.sleep(for: .seconds(2))
        let day = String(ISO8601DateFormatter().string(from: Date()).prefix(10))
        let report = try daemon.get("/reports/daily?day=\(day)").body
        #expect(report.contains(#"{"key":"\#(key)","total":1,"name":"GET /orders/{id}"}"#), "\(report.prefix(300))")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
    }
}
