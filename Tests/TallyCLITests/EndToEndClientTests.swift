import Foundation
import Synchronization
import Testing
import TallyClient
import TallyClientGRPC

/// `TallyClient` against the real binary and PostgreSQL: concurrent callers while the
/// daemon is killed with -9 and restarted, a daemon that answers 503 or stalls, and the
/// shutdown bound. Every increment the client delivered must be counted exactly once.
@Suite(.serialized) struct EndToEndClientTests {
    enum Transport: String, CaseIterable {
        case http, grpc
    }

    @Test(arguments: Transport.allCases)
    func killNineMidRunCountsEveryDeliveredIncrementOnce(transport: Transport) async throws {
        let data = TemporaryDirectory()
        let grpcPort = Daemon.freePort()
        let arguments = ["--grpc-listen", "127.0.0.1:\(grpcPort)"]
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: arguments)
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()

        let keys = (0..<40).map { _ in UUID() }
        let configuration = TallyClientConfiguration.endToEnd(port: daemon.port)
        let client = try TallyClient(configuration: configuration, transport: transport == .grpc
            ? try GRPCTransport(host: "127.0.0.1", port: grpcPort) : nil)
        let running = Task { try await client.run() }
        let ledger = ClientLedger()
        let stopping = Atomic(false)
        let callers = Task { await ledger.run(client, keys: keys, callers: 8) { stopping.load(ordering: .relaxed) } }

        // Crash while batches flow, restart on the same ports, let traffic go on.
        try await waitUntil(seconds: 20) { client.statistics.sent > 2_000 }
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
        try await daemon.crash()
        // Down for longer than a request's timeout: the client's own retries must bridge it
        // (async-http-client waits out shorter gaps inside one attempt).
        try await Task.sleep(for: .milliseconds(2_500))
        let restarted = try Daemon(dataDirectory: data.path + "/node", port: daemon.port, extraArguments: arguments)
        try await restarted.waitUntilServing()
        let sentAtRestart = client.statistics.sent
        try await waitUntil(seconds: 20) { client.statistics.sent > sentAtRestart + 2_000 }
        stopping.store(true, ordering: .relaxed)
        await callers.value

        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete, "everything queued was delivered: \(report.statistics)")
        #expect(report.statistics.retried > 0, "the crash made the client retry: \(report.statistics)")
        #expect(ledger.refusals.isEmpty, "no increment refused under .wait: \(ledger.refusals)")
        kill(restarted.pid, SIGTERM)
        #expect(try await restarted.waitForExit(seconds: 15) == 0)

        let totals = try Daemon.totals(keys.map { $0.uuidString.lowercased() })
        let queued = ledger.queuedTotals
        for key in queued.keys.sorted() {
            #expect(totals[key] == queued[key], "key \(key): PostgreSQL \(totals[key] ?? -1), delivered \(queued[key] ?? -1)")
        }
    }

    /// A batch id taken with other increments is refused for good on both transports (HTTP
    /// 409, gRPC ALREADY_EXISTS): a retry of the same request cannot change it, so the client
    /// must count it failed, not resend it forever.
    @Test func anIdTakenWithOtherIncrementsIsRefusedNotRetried() async throws {
        let data = TemporaryDirectory()
        let grpcPort = Daemon.freePort()
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--grpc-listen", "127.0.0.1:\(grpcPort)"])
        try await daemon.waitUntilServing()
        let transports: [any TallyTransport] = [try HTTPTransport(url: "http://127.0.0.1:\(daemon.port)"),
                                                try GRPCTransport(host: "127.0.0.1", port: grpcPort)]
        for (index, transport) in transports.enumerated() {
            let id = "tc-conflict-\(index)-\(UUID().uuidString.prefix(8))"
            let first = IncrementBatch(id: id, lines: [IncrementLine(key: UUID(), value: 1)], calls: 1)
            let other = IncrementBatch(id: id, lines: [IncrementLine(key: UUID(), value: 2)], calls: 1)
            #expect(try await transport.send(first, timeout: .seconds(10)) == .delivered)
            #expect(try await transport.send(first, timeout: .seconds(10)) == .delivered, "a retry: the first answer again")
            let refused = try await transport.send(other, timeout: .seconds(10))
            guard case .refused = refused else {
                Issue.record("transport \(index): the same id with other increments got \(refused), not a refusal")
                continue
            }
            await transport.shutdown()
        }
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
    }

    /// Names cannot be stored while PostgreSQL is away (`PUT /keys` answers 503) though
    /// increments still are: shutdown delivers the increments and gives up on the names at
    /// once, instead of retrying them until its bound.
    @Test func shutdownDoesNotWaitForNamesThePostgresOutageHolds() async throws {
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url)
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        postgres.stopImmediately()
        var configuration = TallyClientConfiguration.endToEnd(port: daemon.port)
        configuration.shutdownTimeoutSeconds = 20
        let client = try TallyClient(configuration: configuration)
        let running = Task { try await client.run() }
        let key = client.register(name: "GET /never/stored/\(UUID().uuidString.prefix(8))")
        for _ in 0..<10 { #expect(await client.increment(key: key, by: 1) == .queued) }
        try await waitUntil(seconds: 20) { client.statistics.sent == 10 }
        let stopping = ContinuousClock.now
        let report = await client.shutdown()
        try await running.value
        let elapsed = ContinuousClock.now - stopping
        #expect(report.isComplete && report.statistics.sent == 10, "\(report.statistics)")
        #expect(elapsed < .seconds(10), "the 20 s bound is not waited out for a name: \(elapsed)")
        kill(daemon.pid, SIGTERM)
        _ = try await daemon.waitForExit(seconds: 15)
    }

    @Test func a503DaemonFillsTheQueueDropsAreCountedAndDeliveryResumes() async throws {
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url,
                                extraArguments: ["--max-log-bytes", "32KiB"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        postgres.stopImmediately()  // the log fills its 32 KiB budget, then increments get 503

        let capacity = 2_000
        let client = try TallyClient(configuration: .endToEnd(port: daemon.port, whenFull: .dropNewest, capacityLines: capacity))
        let running = Task { try await client.run() }
        let keys = (0..<5_000).map { _ in UUID() }
        let ledger = ClientLedger()
        let stopping = Atomic(false)
        let callers = Task { await ledger.run(client, keys: keys, callers: 4) { stopping.load(ordering: .relaxed) } }

        // The queue fills and stays bounded while the daemon refuses.
        var peak = 0
        try await waitUntil(seconds: 30) {
            peak = max(peak, client.statistics.queuedLines)
            return client.statistics.dropped > 10_000
        }
        for _ in 0..<20 {
            peak = max(peak, client.statistics.queuedLines)
            try await Task.sleep(for: .milliseconds(50))
        }
        let duringOutage = client.statistics
        #expect(duringOutage.dropped > 10_000 && duringOutage.retried > 0, "\(duringOutage)")
        #expect(peak <= capacity, "lines held ≤ capacity, peak \(peak)")
        stopping.store(true, ordering: .relaxed)
        await callers.value

        try postgres.start()  // a checkpoint frees the log; the retries get through
        try await waitUntil(seconds: 30) { client.statistics.queued == 0 }
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent > 0, "\(report.statistics)")
        #expect(ledger.refusals[.dropped] == report.statistics.dropped, "every drop counted")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
        let queued = ledger.queuedTotals
        let totals = try Daemon.totals(Array(queued.keys), databaseURL: postgres.url)
        let wrong = queued.filter { totals[$0.key] != $0.value }
        #expect(wrong.isEmpty, "\(wrong.count) keys differ, e.g. \(wrong.first.map { "\($0.key): \(totals[$0.key] ?? -1) vs \($0.value)" } ?? "")")
    }

    @Test func aStalledDaemonMakesCallersWaitThenDeliveryResumes() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        let client = try TallyClient(configuration: .endToEnd(port: daemon.port, whenFull: .wait, capacityLines: 1_000))
        let running = Task { try await client.run() }
        let keys = (0..<3_000).map { _ in UUID() }
        let ledger = ClientLedger()
        let calls = Atomic(0)
        let stopping = Atomic(false)

        kill(daemon.pid, SIGSTOP)  // accepts nothing, answers nothing
        let callers = Task {
            await ledger.run(client, keys: keys, callers: 4, maxCalls: 2_000) {
                calls.add(1, ordering: .relaxed)
                return stopping.load(ordering: .relaxed)
            }
        }
        try await Task.sleep(for: .seconds(2))
        let stalled = client.statistics
        #expect(stalled.queuedLines <= 1_000 && stalled.sent == 0 && stalled.dropped == 0, "\(stalled)")
        let callsWhileStalled = calls.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(500))
        #expect(calls.load(ordering: .relaxed) == callsWhileStalled, "callers wait for room")

        kill(daemon.pid, SIGCONT)
        await callers.value  // every caller got through: 4 × 2,000 calls
        try await waitUntil(seconds: 30) { client.statistics.queued == 0 }
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent == 8_000 && ledger.refusals.isEmpty, "\(report.statistics)")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
        let queued = ledger.queuedTotals
        let totals = try Daemon.totals(Array(queued.keys))
        #expect(queued.filter { totals[$0.key] != $0.value }.isEmpty, "every delivered increment counted once")
        stopping.store(true, ordering: .relaxed)
    }

    @Test func gracefulShutdownFlushesWithinItsBoundAndReportsTheRest() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        let keys = (0..<500).map { _ in UUID() }

        // A daemon that answers: everything queued is delivered at shutdown, at once.
        var configuration = TallyClientConfiguration.endToEnd(port: daemon.port)
        configuration.flushIntervalSeconds = 60  // only the shutdown flush sends
        configuration.maxBatchLines = 1_000
        configuration.shutdownTimeoutSeconds = 5
        let client = try TallyClient(configuration: configuration)
        let running = Task { try await client.run() }
        for key in keys { await client.increment(key: key, by: 7) }
        let started = ContinuousClock.now
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent == 500, "\(report.statistics)")
        #expect(ContinuousClock.now - started < .seconds(20), "not the 60 s flush timer")

        // A stalled daemon: the flush stops at its bound and reports every increment.
        configuration.shutdownTimeoutSeconds = 1
        let stuck = try TallyClient(configuration: configuration)
        let stuckRun = Task { try await stuck.run() }
        for key in keys { await stuck.increment(key: key, by: 11) }
        kill(daemon.pid, SIGSTOP)
        let stopping = ContinuousClock.now
        let partial = await stuck.shutdown()
        try await stuckRun.value
        let elapsed = ContinuousClock.now - stopping
        kill(daemon.pid, SIGCONT)
        #expect(elapsed >= .seconds(1) && elapsed < .seconds(8), "the 1 s bound holds (slack for a loaded machine): \(elapsed)")
        #expect(!partial.isComplete && partial.undeliveredCalls == 500 && partial.statistics.sent == 0, "\(partial.statistics)")
        #expect(Set(partial.undelivered.flatMap(\.lines).map(\.key)) == Set(keys))

        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
        // Delivered once; the unconfirmed batch was in flight at the bound, so the daemon may
        // hold it (once: it carries its id) or not.
        let totals = try Daemon.totals(keys.map { $0.uuidString.lowercased() })
        #expect(totals.values.allSatisfy { $0 == 7 || $0 == 18 }, "\(Set(totals.values))")
    }
}

func waitUntil(seconds: Double, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
}
