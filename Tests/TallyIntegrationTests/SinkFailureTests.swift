import Foundation
import Testing
import TallyCore
import TallyLog
import TallyPostgres

/// The sink's failure paths against a real server: failures are made by PostgreSQL itself
/// (triggers that raise, skip or stall), so the real ROLLBACK, the classification of a
/// COMMIT error and the compare-and-set check all run. Each trigger fires only for this
/// test's own node or key, so tests running beside it are not disturbed.
@Suite struct SinkFailureTests {
    /// Runs `;`-separated statements one by one (each with the extended protocol).
    /// Runs DDL beside other tests' checkpoints. A trigger on `tally_checkpoints` takes a lock
    /// that can deadlock with a concurrent checkpoint (PostgreSQL then aborts one of the
    /// two): the statement is retried, a bounded number of times.
    private static func sql(_ statements: String, _ client: PostgresClient) async throws {
        let parts = statements.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        for part in parts where !part.isEmpty {
            let statement = part.hasSuffix(";") ? String(part.dropLast()) : part
            for attempt in 1...10 {
                do {
                    try await client.withConnection { connection in _ = try connection.execute(statement) }
                    break
                } catch let error as PostgresError where error.sqlState == "40P01" && attempt < 10 {
                    try await Task.sleep(for: .milliseconds(50 * attempt))
                }
            }
        }
    }

    private func identifier() -> String { "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12) }

    @Test func aServerErrorInsideTheTransactionRollsBackAndTheSumsAreRetried() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client, chunkRows: 4))
        let bad = LogKey(UUID())
        let name = identifier()
        try await Self.sql("""
            CREATE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected: refusing key %', NEW.key; END $$;
            CREATE TRIGGER \(name) BEFORE INSERT OR UPDATE ON tally_counts FOR EACH ROW
              WHEN (NEW.key = '\(bad.uuidString)') EXECUTE FUNCTION \(name)();
            """, client)
        var workload = Workload(keyCount: 12)
        let batch = workload.next(40) + [LogRecord(key: bad, value: 7, arrivalMillis: 0)]
        try await node.log.append(batch)
        workload.acknowledge(batch)

        do {
            try await node.checkpointer.checkpoint()
            Issue.record("the trigger must fail the checkpoint")
        } catch let error as PostgresError {
            #expect(error.sqlState == "P0001" && !error.connectionBroken, "\(error)")
        }
        #expect(try await TestDatabase.totals(workload.keys + [bad], client: client).isEmpty, "nothing applied")
        #expect(try await PostgresCheckpointSink(client: client).checkpointLSN(node: node.identity.id) == 0)
        #expect(node.compactor.pending.records == 41, "the sums went back to the compactor")

        try await Self.sql("DROP TRIGGER \(name) ON tally_counts;\nDROP FUNCTION \(name)()", client)
        try await node.checkpointer.checkpoint()  // same client, same connection: it was rolled back
        var expected = workload.expected
        expected[bad] = 7
        #expect(try await TestDatabase.totals(workload.keys + [bad], client: client) == expected)
        await node.log.close()
    }

    @Test func aCommitTheServerRefusesIsASureRollbackNotAnUnknownOutcome() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        try await node.checkpointer.checkpoint()  // the row exists, the position is known
        let name = identifier()
        // A deferred constraint trigger runs at COMMIT: the COMMIT itself fails.
        try await Self.sql("""
            CREATE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected: refusing the commit'; END $$;
            CREATE CONSTRAINT TRIGGER \(name) AFTER UPDATE ON tally_checkpoints DEFERRABLE INITIALLY DEFERRED
              FOR EACH ROW WHEN (NEW.node = '\(node.identity.id.uuidString)') EXECUTE FUNCTION \(name)();
            """, client)
        var workload = Workload(keyCount: 5)
        let batch = workload.next(20)
        try await node.log.append(batch)
        workload.acknowledge(batch)
        do {
            try await node.checkpointer.checkpoint()
            Issue.record("the COMMIT must fail")
        } catch let error as PostgresError {
            #expect(error.sqlState == "P0001" && !error.connectionBroken, "\(error)")
        } catch {
            Issue.record("a COMMIT the server answered with an error surely rolled back, not: \(error)")
        }
        #expect(node.compactor.pending.records == 20, "the sums went back to the compactor")
        try await Self.sql("DROP TRIGGER \(name) ON tally_checkpoints;\nDROP FUNCTION \(name)()", client)
        try await node.checkpointer.checkpoint()
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        await node.log.close()
    }

    @Test func anUpdateOfNoRowIsAConflictAndNothingIsApplied() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        try await node.checkpointer.checkpoint()
        let name = identifier()
        // The compare-and-set UPDATE finds no row to change (a BEFORE trigger skips it).
        try await Self.sql("""
            CREATE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
            CREATE TRIGGER \(name) BEFORE UPDATE ON tally_checkpoints FOR EACH ROW
              WHEN (NEW.node = '\(node.identity.id.uuidString)') EXECUTE FUNCTION \(name)();
            """, client)
        var workload = Workload(keyCount: 5)
        let batch = workload.next(20)
        try await node.log.append(batch)
        workload.acknowledge(batch)
        await #expect(throws: CheckpointSinkError.self) { try await node.checkpointer.checkpoint() }
        #expect(try await TestDatabase.totals(workload.keys, client: client).isEmpty, "rolled back with the failed compare-and-set")
        try await Self.sql("DROP TRIGGER \(name) ON tally_checkpoints;\nDROP FUNCTION \(name)()", client)
        try await node.checkpointer.checkpoint()
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        #expect(node.checkpointer.status.positionError == nil, "the row never moved: not another process")
        await node.log.close()
    }

    @Test func aConnectionKilledDuringCommitIsAnUnknownOutcomeResolvedByReadingBack() async throws {
        let data = TemporaryDirectory()
        let client = try await TestDatabase.migratedClient()
        let node = try await startNode(data.path, sink: PostgresCheckpointSink(client: client))
        try await node.checkpointer.checkpoint()
        let name = identifier()
        try await Self.sql("""
            CREATE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER \(name) AFTER UPDATE ON tally_checkpoints DEFERRABLE INITIALLY DEFERRED
              FOR EACH ROW WHEN (NEW.node = '\(node.identity.id.uuidString)') EXECUTE FUNCTION \(name)();
            """, client)
        var workload = Workload(keyCount: 5)
        let batch = workload.next(20)
        try await node.log.append(batch)
        workload.acknowledge(batch)

        let killer = PostgresClient(url: TestDatabase.url)
        let killing = Task {
            for _ in 0..<100 {
                let killed = try await killer.withConnection { connection in
                    try connection.execute("""
                        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                        WHERE query = 'COMMIT' AND state = 'active' AND wait_event = 'PgSleep'
                        """).rowCount
                }
                if killed > 0 { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        do {
            try await node.checkpointer.checkpoint()
            Issue.record("the COMMIT's connection was killed")
        } catch let error as CheckpointSinkError {
            guard case .outcomeUnknown = error else { throw error }
        }
        #expect(try await killing.value, "the backend was terminated mid-COMMIT")
        try await Self.sql("DROP TRIGGER \(name) ON tally_checkpoints;\nDROP FUNCTION \(name)()", client)
        try await node.checkpointer.checkpoint()  // reads the LSN back: not committed, rebuild from the log
        #expect(try await TestDatabase.totals(workload.keys, client: client) == workload.expected)
        await node.log.close()
    }
}
