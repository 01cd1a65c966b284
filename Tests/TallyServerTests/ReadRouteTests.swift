import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import TallyCore
import TallyLog
import TallyPostgres
@testable import TallyServer

/// The read routes against a real node and PostgreSQL, through the router and over a socket.
@Suite struct ReadRouteTests {
    let key = UUID().uuidString.lowercased()

    @Test func aKeysCountIncludesWhatThisNodeHoldsThenWhatPostgresHolds() async throws {
        let server = try await TestServer()
        try await server.app.test(.live) { client in
            try await client.execute(uri: "/counts/\(key)", method: .get) { response in
                #expect(response.status == .serviceUnavailable, "before the first pass the pending part is not known")
                #expect(response.headers[.retryAfter] != nil)
            }
            try await server.node.checkpointer.checkpoint()  // the node knows its checkpoint: pending is exact
            try await client.execute(uri: "/counts/\(UUID().uuidString)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).hasSuffix(#""total":0,"persisted":0,"pending":0}"#), "never counted reads 0")
            }
            for value: Int64 in [.max, .max, 3] {
                try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, value)) { #expect($0.status == .ok) }
            }
            // Read your writes before any checkpoint; exact beyond Int64 as a JSON integer.
            try await client.execute(uri: "/counts/\(key.uppercased())", method: .get) { response in
                #expect(String(buffer: response.body)
                    == #"{"key":"\#(key)","total":18446744073709551617,"persisted":0,"pending":18446744073709551617}"#)
            }
            try await server.node.checkpointer.checkpoint()
            try await client.execute(uri: "/counts/\(key)", method: .get) { response in
                #expect(String(buffer: response.body)
                    == #"{"key":"\#(key)","total":18446744073709551617,"persisted":18446744073709551617,"pending":0}"#)
            }
        }
        await server.node.log.close()
    }

    @Test func dailyPeriodAndReportReadTheDayOfArrival() async throws {
        let server = try await TestServer()
        let today = Day(arrivalMillis: IncrementIntake.nowMillis()).iso
        let (year, month, _) = Day(iso: today)!.components
        try await server.node.checkpointer.checkpoint()
        try await server.app.test(.router) { client in
            for value: Int64 in [4, 6] {
                try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, value)) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/counts/\(key)/daily?from=2000-01-01&to=\(today)", method: .get) { response in
                #expect(response.status == .badRequest, "more than 366 days")
            }
            try await client.execute(uri: "/counts/\(key)/daily?from=\(today)&to=\(today)", method: .get) { response in
                #expect(String(buffer: response.body) == #"{"key":"\#(key)","days":[{"day":"\#(today)","total":10}]}"#)
            }
            try await server.node.checkpointer.checkpoint()
            try await client.execute(uri: "/counts/\(key)/period?year=\(year)&month=\(month)", method: .get) { response in
                #expect(json(response.body)["total"] as? Int == 10)
                #expect((json(response.body)["from"] as? String)?.hasSuffix("-01") == true)
            }
            try await client.execute(uri: "/counts/\(key)/period?year=\(year - 1)", method: .get) { response in
                #expect(json(response.body)["total"] as? Int == 0)
            }
            let names = PostgresClient(url: TestDatabase.url)
            try await names.withConnection { _ = try $0.execute(
                "INSERT INTO tally_key_names (key, name, updated_at) VALUES ($1, $2, now()) ON CONFLICT (key) DO UPDATE SET name = $2",
                [key, "GET /users/{id}"]) }
            try await client.execute(uri: "/reports/daily?day=\(today)&after=\(previous(key))&limit=1", method: .get) { response in
                let body = json(response.body)
                let entries = body["keys"] as? [[String: Any]] ?? []
                #expect(entries.first?["key"] as? String == key && entries.first?["total"] as? Int == 10, "\(body)")
                #expect(entries.first?["name"] as? String == "GET /users/{id}")
                #expect(body["next_after"] != nil)
            }
        }
        await server.node.log.close()
    }

    /// The key just before `key` in UUID order, so that a one-entry page starts at `key`.
    private func previous(_ key: String) -> String {
        let parsed = LogKey(UUID(uuidString: key)!)
        let before = parsed.low > 0 ? LogKey(high: parsed.high, low: parsed.low - 1) : LogKey(high: parsed.high - 1, low: .max)
        return before.uuidString
    }

    @Test func malformedParametersGet400NamingThem() async throws {
        let server = try await TestServer()
        let cases: [(String, String)] = [
            ("/counts/not-a-uuid", "key"),
            ("/counts/\(key)?x=1", "unknown query parameter \"x\""),
            ("/counts/\(key)/daily?from=2026-01-01", "\"to\""),
            ("/counts/\(key)/daily?from=2026-02-30&to=2026-03-01", "\"from\""),
            ("/counts/\(key)/daily?from=2026-03-02&to=2026-03-01", "after"),
            ("/counts/\(key)/daily?from=2026-01-01&to=2026-01-02&to=2026-01-03", "more than once"),
            ("/counts/\(key)/period", "\"year\""),
            ("/counts/\(key)/period?year=2026&day=3", "\"month\""),
            ("/counts/\(key)/period?year=2026&month=2&day=29", "\"day\""),
            ("/counts/\(key)/period?year=0", "\"year\""),
            ("/reports/daily", "\"day\""),
            ("/reports/daily?day=2026-01-01&limit=10001", "\"limit\""),
            ("/reports/daily?day=2026-01-01&after=zzz", "\"after\""),
        ]
        try await server.app.test(.router) { client in
            for (uri, named) in cases {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .badRequest, "\(uri)")
                    #expect((json(response.body)["error"] as? String)?.contains(named) == true, "\(uri): \(String(buffer: response.body))")
                }
            }
        }
        await server.node.log.close()
    }

    @Test func withPostgresUnreachableReadsGet503AndIncrementsStill200() async throws {
        let server = try await TestServer(readsURL: "postgresql://postgres@127.0.0.1:1/postgres")
        try await server.app.test(.live) { client in
            try await client.execute(uri: "/counts/\(key)", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 >= 1)
            }
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 1)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/reports/daily?day=2026-01-01", method: .get) { #expect($0.status == .serviceUnavailable) }
        }
        await server.node.log.close()
    }

    @Test func theServedDocumentIsTheRepositorysOpenAPIFile() async throws {
        let server = try await TestServer()
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("openapi.yaml")
        let expected = try String(contentsOf: file, encoding: .utf8)
        try await server.app.test(.router) { client in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == expected, "run `make openapi` after editing openapi.yaml")
            }
        }
        await server.node.log.close()
    }

    @Test func anIncrementIsCountedOnTheUTCDayItArrived() throws {
        let midnight = Int64(Day(iso: "2026-12-01")!.number) * Day.millisecondsPerDay
        var table = DeltaTable(after: 0)
        for (lsn, arrival) in [midnight - 1, midnight].enumerated() {
            let intake = IncrementIntake(maxBodyBytes: 4096, clock: { arrival })
            let body = #"{"key":"\#(key)","value":1}"#
            guard case .submit(let records, _) = body.utf8.withContiguousStorageIfAvailable({ intake.outcome(kind: .single, body: UnsafeRawBufferPointer($0), idempotencyKey: nil) })!, let record = records.first else {
                Issue.record("refused")
                return
            }
            table.absorb(record, at: LSN(lsn + 1))
        }
        #expect(table.sortedDeltas().map(\.day.iso) == ["2026-11-30", "2026-12-01"])
    }
}
