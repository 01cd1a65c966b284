import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TallyClient

/// `make example`: serves the app in-process, sends it a fixed mix of requests, shuts it
/// down gracefully (the client flushes), then prints the daemon's daily report for the
/// app's routes once PostgreSQL has them (one checkpoint, at most 10 s).
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send the app a mix of requests and print the daily report they produce in Tally.")

    @Option(help: "The Tally daemon (default: $TALLY_URL or http://127.0.0.1:8080).")
    var tallyURL = defaultTallyURL()

    @Option(help: "Requests to send, spread over the routes in fixed proportions.")
    var requests = 200

    /// The routes as the middleware names them, and how a request to each is made.
    static let mix: [(name: String, method: HTTPMethod, path: @Sendable (Int) -> String, share: Int)] = [
        ("GET /users/{id}", .GET, { "/users/\($0)" }, 5),
        ("GET /users/{id}/orders", .GET, { "/users/\($0)/orders" }, 2),
        ("POST /users", .POST, { _ in "/users" }, 1),
        ("DELETE /users/{id}", .DELETE, { "/users/\($0)" }, 1),
        ("GET /", .GET, { _ in "/" }, 1),
    ]

    func run() async throws {
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            try await demo(http)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    private func demo(_ http: HTTPClient) async throws {
        var logger = Logger(label: "tally-example")
        logger.logLevel = .warning
        let day = Self.today()
        let keys = Self.mix.map { TallyKeyName.key(for: $0.name) }
        let before = try await Self.report(http, tallyURL: tallyURL, day: day, keys: Set(keys))

        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let group = try ExampleApp.makeGroup(host: "127.0.0.1", port: 0, tallyURL: tallyURL, logger: logger,
                                             onListening: { portSink.yield($0) })
        let serving = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ValidationError("the app did not start") }

        let cycle = Self.mix.flatMap { route in Array(repeating: route, count: route.share) }
        var sent = [String: Int]()
        for index in 0..<requests {
            let route = cycle[index % cycle.count]
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)" + route.path(index + 1))
            request.method = route.method
            let response = try await http.execute(request, timeout: .seconds(5))
            _ = try await response.body.collect(upTo: 64 * 1024)
            sent[route.name, default: 0] += 1
        }
        print("sent \(requests) requests to the app on 127.0.0.1:\(port); stopping it (the client flushes)")
        await group.triggerGracefulShutdown()
        try await serving.value

        print("waiting for the daemon's checkpoint (at most 10 s)…")
        var after = before
        for _ in 0..<60 {
            after = try await Self.report(http, tallyURL: tallyURL, day: day, keys: Set(keys))
            if Self.mix.allSatisfy({ route in
                let key = TallyKeyName.key(for: route.name)
                return (after[key]?.total ?? 0) >= (before[key]?.total ?? 0) + (sent[route.name] ?? 0)
            }) { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        print("")
        print("GET \(tallyURL)/reports/daily?day=\(day), the app's routes:")
        print(Self.pad("name", 24) + Self.pad("key", 38) + Self.pad("this run", 10) + "total today")
        for route in Self.mix {
            let key = TallyKeyName.key(for: route.name)
            let row = after[key]
            print(Self.pad(row?.name ?? "(no name yet)", 24) + Self.pad(key.uuidString.lowercased(), 38)
                  + Self.pad(String((row?.total ?? 0) - (before[key]?.total ?? 0)), 10) + String(row?.total ?? 0))
        }
    }

    struct Row {
        var total: Int
        var name: String?
    }

    /// The report's rows for `keys`, following its pages.
    static func report(_ http: HTTPClient, tallyURL: String, day: String, keys: Set<UUID>) async throws -> [UUID: Row] {
        var rows: [UUID: Row] = [:]
        var after: String?
        repeat {
            var url = "\(tallyURL)/reports/daily?day=\(day)&limit=10000"
            if let after { url += "&after=\(after)" }
            let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 16 * 1024 * 1024)
            guard response.status == .ok,
                  let page = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
                throw ValidationError("GET \(url) answered \(response.status): \(String(buffer: body))")
            }
            for entry in page["keys"] as? [[String: Any]] ?? [] {
                guard let key = (entry["key"] as? String).flatMap(UUID.init(uuidString:)), keys.contains(key) else { continue }
                rows[key] = Row(total: (entry["total"] as? NSNumber)?.intValue ?? 0, name: entry["name"] as? String)
            }
            after = page["next_after"] as? String
        } while after != nil
        return rows
    }

    static func today() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: Date())
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
