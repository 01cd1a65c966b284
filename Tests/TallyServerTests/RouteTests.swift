import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing
import TallyCore
import TallyLog
import TallyIngest
@testable import TallyServer

/// Every status code of the API, with a real log and PostgreSQL, on both paths an increment
/// can take: Hummingbird's router (in process) and, over a real socket, the event-loop
/// fast path (`IncrementChannelHandler`) that answers most increments in production.
@Suite struct RouteTests {
    let key = UUID().uuidString.lowercased()

    enum Path: String, CaseIterable, Sendable, CustomStringConvertible {
        case router, socket
        var setup: TestingSetup { self == .router ? .router : .live }
        var description: String { rawValue }
    }

    @Test(arguments: Path.allCases) func anIncrementIsDurableBefore200(_ path: Path) async throws {
        let server = try await TestServer()
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 5)) { response in
                #expect(response.status == .ok)
                #expect(json(response.body)["lsn"] as? Int == 1)
                #expect(response.headers[.contentType] == "application/json")
            }
        }
        // The 200 came after the record was written: it is in the file (this reads the page
        // cache, so it cannot tell whether it was synced; the next test checks that order).
        #expect(try server.loggedRecords().map(\.value) == [5])
        #expect(try server.loggedRecords().first?.key == LogKey(UUID(uuidString: key)!))
        await server.node.log.close()
    }

    /// The log's sync step (the real fdatasync, then this hook) takes 300 ms here: an answer
    /// sent before the sync returned would arrive before the hook finished.
    @Test(arguments: Path.allCases) func the200LeavesOnlyAfterTheFdatasyncReturned(_ path: Path) async throws {
        let syncReturned = Mutex<ContinuousClock.Instant?>(nil)
        let faults = LogFaults(sync: {
            usleep(300_000)
            syncReturned.withLock { $0 = .now }
            return nil
        })
        let server = try await TestServer(logFaults: faults)
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 5)) { response in
                let answered = ContinuousClock.now
                #expect(response.status == .ok)
                let synced = try #require(syncReturned.withLock { $0 })
                #expect(synced <= answered, "the answer waited for the sync")
            }
        }
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func badBodiesGet400NamingTheFieldAndStoreNothing(_ path: Path) async throws {
        let server = try await TestServer()
        let bodies = [#"{"key":"nope","value":1}"#, #"{"key":"\#(key)","value":0}"#, #"{"key":"\#(key)"}"#, "not json",
                      #"{"key":"\#(key)","value":1,"x":2}"#]
        try await server.app.test(path.setup) { client in
            for body in bodies {
                try await client.execute(uri: "/increment", method: .post, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect((json(response.body)["error"] as? String)?.isEmpty == false)
                }
            }
        }
        #expect(try server.loggedRecords().isEmpty)
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func oversizedBodiesGet413(_ path: Path) async throws {
        let server = try await TestServer { $0.maxBodyBytes = 64 }
        try await server.app.test(path.setup) { client in
            let big = ByteBuffer(string: #"{"key":"\#(key)","value":1}"# + String(repeating: " ", count: 100))
            try await client.execute(uri: "/increment", method: .post, body: big) { response in
                #expect(response.status == .contentTooLarge)
                #expect(json(response.body)["error"] != nil)
            }
        }
        #expect(try server.loggedRecords().isEmpty)
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func otherMethodsGet405AndUnknownPaths404AsJSON(_ path: Path) async throws {
        let server = try await TestServer()
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increment", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
            }
            try await client.execute(uri: "/nowhere", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(json(response.body)["error"] != nil)
            }
        }
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func withAPIKeysEveryRouteButHealthzNeedsABearerToken(_ path: Path) async throws {
        let server = try await TestServer { $0.apiKeys = try? APIKeys(keys: ["s3cret-key", "other"]) }
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { response in
                #expect(response.status == .unauthorized)
                #expect(json(response.body)["error"] != nil)
            }
            try await client.execute(uri: "/increment", method: .post, headers: [.authorization: "Bearer wrong"],
                                     body: incrementBody(key, 1)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/increment", method: .post, headers: [.authorization: "Bearer s3cret-key"],
                                     body: incrementBody(key, 1)) { #expect($0.status == .ok) }
        }
        #expect(try server.loggedRecords().count == 1)
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func overTheRateLimitClientsGet429WithRetryAfter(_ path: Path) async throws {
        // One token per 1000 s: no refill can happen during the test, however slow the machine.
        let server = try await TestServer {
            $0.rateLimitPerSecond = 0.001
            $0.rateBurst = 2
        }
        try await server.app.test(path.setup) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { response in
                #expect(response.status == .tooManyRequests)
                #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1)
            }
        }
        #expect(try server.loggedRecords().count == 2, "the refused request stored nothing")
        await server.node.log.close()
    }

    @Test(arguments: Path.allCases) func whenTheLogCannotTakeWritesIncrementsGet503AndAreNotCounted(_ path: Path) async throws {
        let server = try await TestServer()
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 3)) { #expect($0.status == .ok) }
            await server.node.log.close()  // from now on appends are refused
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 4)) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] != nil)
                #expect(json(response.body)["error"] as? String != nil)
            }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
        }
        #expect(try server.loggedRecords().map(\.value) == [3])
        try await server.node.checkpointer.checkpoint()
        let totals = try await TotalsQuery.total(of: LogKey(UUID(uuidString: key)!))
        #expect(totals == "3", "the refused increment is not counted")
    }

    @Test(arguments: Path.allCases) func overTheDiskBudgetIncrementsGet503(_ path: Path) async throws {
        let server = try await TestServer { $0.maxLogBytes = 100 }
        try await server.app.test(path.setup) { client in
            for _ in 0..<3 {
                try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { _ in }
            }
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] != nil)
            }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
        }
        await server.node.log.close()
    }
}

import TallyPostgres

enum TotalsQuery {
    static func total(of key: LogKey) async throws -> String? {
        let client = PostgresClient(url: TestDatabase.url)
        return try await client.withConnection { connection in
            let rows = try connection.execute("SELECT total::text FROM tally_counts WHERE key = $1", [key.uuidString])
            return rows.rowCount == 1 ? rows.value(row: 0, column: 0) : nil
        }
    }
}
