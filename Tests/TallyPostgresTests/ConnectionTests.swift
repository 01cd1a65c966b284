import Foundation
import Testing
import TallyPostgres

@Suite struct ConnectionTests {
    @Test func parametersRoundTripAsText() async throws {
        let client = PostgresClient(url: TestDatabase.url)
        let row = try await client.withConnection { connection in
            let result = try connection.execute("SELECT $1::int + 1, $2::text, $3::text IS NULL", ["41", "it's \"quoted\"", nil])
            return [result.value(row: 0, column: 0), result.value(row: 0, column: 1), result.value(row: 0, column: 2)]
        }
        #expect(row == ["42", "it's \"quoted\"", "t"])
    }

    @Test func serverErrorsCarryTheirSQLState() async throws {
        let client = PostgresClient(url: TestDatabase.url)
        do {
            _ = try await client.withConnection { _ = try $0.execute("SELEC 1") }
            Issue.record("a syntax error must throw")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42601")
            #expect(!error.connectionBroken)
        }
        // The connection stays usable after a statement error.
        let one = try await client.withConnection { try $0.execute("SELECT 1").value(row: 0, column: 0) }
        #expect(one == "1")
    }

    @Test func anUnreachableServerIsAConnectionError() async throws {
        let client = PostgresClient(url: "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2")
        do {
            _ = try await client.withConnection { _ = try $0.execute("SELECT 1") }
            Issue.record("connecting to a closed port must fail")
        } catch let error as PostgresError {
            #expect(error.connectionBroken)
            #expect(error.message.contains("cannot connect"))
        }
    }

    @Test func aKilledConnectionIsReportedAndTheNextCallReconnects() async throws {
        let client = PostgresClient(url: TestDatabase.url)
        let pid = try await client.withConnection { try $0.execute("SELECT pg_backend_pid()").value(row: 0, column: 0)! }
        let killer = PostgresClient(url: TestDatabase.url)
        _ = try await killer.withConnection { _ = try $0.execute("SELECT pg_terminate_backend($1::int)", [pid]) }
        do {
            _ = try await client.withConnection { _ = try $0.execute("SELECT 1") }
            Issue.record("a terminated backend must surface as an error")
        } catch let error as PostgresError {
            #expect(error.connectionBroken)
        }
        let newPID = try await client.withConnection { try $0.execute("SELECT pg_backend_pid()").value(row: 0, column: 0)! }
        #expect(newPID != pid)
    }

    @Test func migrationsApplyOnceEvenWhenRunConcurrently() async throws {
        // On a database of its own, so that the race is real: every migration is pending.
        let admin = PostgresClient(url: TestDatabase.url)
        let name = "tally_migrations_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try await admin.withConnection { _ = try $0.execute("CREATE DATABASE \(name)") }
        let base = TestDatabase.url
        let url = base[..<base.lastIndex(of: "/")!] + "/" + name
        let clients = (0..<4).map { _ in PostgresClient(url: url) }
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in clients { group.addTask { try await Migrations(client: client).migrate() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.flatMap { $0 }.sorted() == Migrations.all.map(\.version), "each version applied exactly once")
        #expect(try await Migrations(client: clients[0]).migrate().isEmpty)
        let versions = try await clients[0].withConnection {
            try $0.execute("SELECT count(*) FROM tally_schema_migrations").value(row: 0, column: 0)
        }
        #expect(versions == String(Migrations.all.count))
        for client in clients { await client.disconnect() }
        _ = try await admin.withConnection { _ = try $0.execute("DROP DATABASE \(name)") }
    }
}
