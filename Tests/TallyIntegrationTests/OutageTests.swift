import Foundation
import Testing
import TallyCore
import TallyLog
import TallyPostgres

/// PostgreSQL going away and coming back, on a private server so that stopping it cannot
/// disturb the other tests.
@Suite struct OutageTests {
    @Test func appendsContinueThroughAnOutageAndTotalsConvergeAfterIt() async throws {
        let pgDirectory = TemporaryDirectory()
        let script = repositoryRoot + "/scripts/pg-cluster.sh"
        let started = try shell("\(script) start \(pgDirectory.path)/pg")
        #expect(started.status == 0, "\(started.output)")
        let url = started.output.split(separator: "\n").last.map(String.init) ?? ""
        let port = url.split(separator: ":").last!.split(separator: "/").first!
        defer { _ = try? shell("PG_STOP_MODE=immediate \(script) stop \(pgDirectory.path)/pg") }

        let client = try await TestDatabase.migratedClient(url: url)
        let data = TemporaryDirectory()
        var options = CountingNode.Options(dataDirectory: data.path)
        options.checkpointInterval = .milliseconds(500)
        let node = try await CountingNode.start(options, sink: PostgresCheckpointSink(client: PostgresClient(url: url)),
                                                logger: .init(label: "outage-test"))
        let loop = Task { await node.run() }
        defer { loop.cancel() }
        var workload = Workload(keyCount: 20)

        let before = workload.next(50)
        try await node.log.append(before)
        workload.acknowledge(before)
        try await waitUntil(seconds: 10) { try await TestDatabase.totals(workload.keys, client: client) == workload.expected }

        // Immediate stop: the server dies without a clean shutdown, connections drop.
        #expect(try shell("PG_STOP_MODE=immediate \(script) stop \(pgDirectory.path)/pg").status == 0)
        for _ in 0..<10 {
            let batch = workload.next(10)
            try await node.log.append(batch)  // still acknowledged: the log is the buffer
            workload.acknowledge(batch)
        }
        try await waitUntil(seconds: 10) { !node.checkpointer.status.sinkAvailable }
        try await Task.sleep(for: .milliseconds(600))
        #expect(node.checkpointer.status.lag() > .milliseconds(500), "the lag is reported while PostgreSQL is down")
        #expect(node.checkpointer.status.pendingRecords > 0)

        let restarted = try shell("\(script) start \(pgDirectory.path)/pg \(port)")
        #expect(restarted.status == 0, "\(restarted.output)")
        try await waitUntil(seconds: 15) {
            try await TestDatabase.totals(workload.keys, client: client) == workload.expected
        }
        try await waitUntil(seconds: 5) { node.checkpointer.status.sinkAvailable }
        loop.cancel()
        await node.log.close()
    }

    /// Polls `condition` (errors count as "not yet") until it holds or the time is up.
    private func waitUntil(seconds: Int, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("condition not reached within \(seconds) s")
    }
}
