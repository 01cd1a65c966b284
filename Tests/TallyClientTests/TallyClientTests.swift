import Foundation
import NIOCore
import Synchronization
import Testing
@testable import TallyClient

/// The client's behaviour over a scripted transport: retries repeat the batch and its id,
/// the full-queue policies, and the shutdown bound.
@Suite struct TallyClientTests {
    @Test func retriesRepeatTheSameBatchAndIdUntilDelivered() async throws {
        let transport = ScriptedTransport([
            .retry(reason: "HTTP 503", after: nil), .retry(reason: "timeout", after: nil), .retry(reason: "reset", after: nil),
        ])
        let client = try TallyClient(configuration: .test(), transport: transport)
        let running = Task { try await client.run() }
        let key = UUID()
        for _ in 0..<10 { #expect(await client.increment(key: key, by: 3) == .queued) }
        try await waitUntil { client.statistics.sent == 10 }
        let report = await client.shutdown()
        try await running.value
        let attempts = transport.sent
        #expect(attempts.count == 4, "three retries, then delivered")
        #expect(Set(attempts.map(\.id)).count == 1 && Set(attempts.map(\.lines)).count == 1, "the same batch each time")
        #expect(transport.delivered.withLock { $0 } == [key: 30])
        #expect(report.isComplete && report.statistics.retried == 3 && report.statistics.sent == 10)
    }

    @Test func batchIdsCarryTheWholeClientUUIDSoTwoClientsNeverShareOne() async throws {
        var ids: [String] = []
        for _ in 0..<2 {
            let transport = ScriptedTransport()
            let client = try TallyClient(configuration: .test(), transport: transport)
            let running = Task { try await client.run() }
            await client.increment(key: UUID())
            try await waitUntil { client.statistics.sent == 1 }
            _ = await client.shutdown()
            try await running.value
            ids += transport.sent.map(\.id)
        }
        #expect(ids.count == 2 && Set(ids).count == 2)
        for id in ids {
            let parts = id.split(separator: "-", maxSplits: 1)
            #expect(parts.first == "tc" && id.count <= 64, "\(id)")
            #expect(UUID(uuidString: String(parts[1].dropLast(2))) != nil, "tc-<the client's whole UUID>-1: \(id)")
        }
    }

    @Test func secondsThatCannotBeADurationAreRefusedAtConfiguration() throws {
        for broken in [Double.infinity, .nan, 1e10] {
            var configuration = TallyClientConfiguration.test()
            configuration.shutdownTimeoutSeconds = broken
            #expect(throws: TallyClientError.self) { try TallyClient(configuration: configuration, transport: ScriptedTransport()) }
            configuration = .test()
            configuration.requestTimeoutSeconds = broken
            #expect(throws: TallyClientError.self) { try TallyClient(configuration: configuration, transport: ScriptedTransport()) }
            configuration = .test()
            configuration.retryMaxDelaySeconds = broken
            #expect(throws: TallyClientError.self) { try TallyClient(configuration: configuration, transport: ScriptedTransport()) }
        }
        var ordinary = TallyClientConfiguration.test()
        ordinary.shutdownTimeoutSeconds = 86_400
        _ = try TallyClient(configuration: ordinary, transport: ScriptedTransport())
    }

    @Test func aRefusalIsCountedAsFailedAndNotRetried() async throws {
        let transport = ScriptedTransport([.refused(reason: "HTTP 401")])
        let client = try TallyClient(configuration: .test(), transport: transport)
        let running = Task { try await client.run() }
        await client.increment(key: UUID())
        try await waitUntil { client.statistics.failed == 1 }
        let report = await client.shutdown()
        try await running.value
        #expect(transport.sent.count == 1 && report.statistics.failed == 1 && report.statistics.sent == 0)
    }

    @Test func dropNewestNeverWaitsAndCountsDrops() async throws {
        let transport = ScriptedTransport(stalled: true)
        let client = try TallyClient(configuration: .test(capacityLines: 50, maxBatchLines: 10), transport: transport)
        let running = Task { try await client.run() }
        var results: [IncrementResult: Int] = [:]
        let started = ContinuousClock.now
        for _ in 0..<1_000 { results[await client.increment(key: UUID()), default: 0] += 1 }
        #expect(ContinuousClock.now - started < .seconds(10), "never waits for the stalled daemon (which never answers)")
        #expect(results[.queued] == 50 && results[.dropped] == 950 && client.statistics.dropped == 950)
        transport.release()
        try await waitUntil { client.statistics.sent == 50 }
        #expect(await client.increment(key: UUID()) == .queued, "room again once delivered")
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent == 51)
    }

    @Test func waitSuspendsCallersUntilThereIsRoom() async throws {
        let transport = ScriptedTransport(stalled: true)
        let client = try TallyClient(configuration: .test(capacityLines: 20, maxBatchLines: 10, whenFull: .wait),
                                     transport: transport)
        let running = Task { try await client.run() }
        let results = Locked<[IncrementResult]>([])
        let callers = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        for _ in 0..<10 {
                            let result = await client.increment(key: UUID())
                            results.withLock { $0.append(result) }
                        }
                    }
                }
            }
        }
        try await waitUntil { results.withLock { $0.count } == 20 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(results.withLock { $0.count } == 20, "the rest wait while the daemon stalls")
        transport.release()
        await callers.value
        #expect(results.withLock { $0 }.allSatisfy { $0 == .queued } && client.statistics.dropped == 0)
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent == 80)
    }

    @Test func aCancelledWaitIsDroppedAndCounted() async throws {
        let transport = ScriptedTransport(stalled: true)
        let client = try TallyClient(configuration: .test(capacityLines: 1, maxBatchLines: 1, whenFull: .wait),
                                     transport: transport)
        let running = Task { try await client.run() }
        await client.increment(key: UUID())
        let waiting = Task { await client.increment(key: UUID()) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(await waiting.value == .cancelled && client.statistics.dropped == 1)
        transport.release()
        _ = await client.shutdown()
        try await running.value
    }

    @Test func shutdownFlushesWithinItsBoundAndReportsTheRest() async throws {
        // Delivered: everything queued before shutdown, without waiting for the flush timer.
        var configuration = TallyClientConfiguration.test()
        configuration.flushIntervalSeconds = 60
        let quick = ScriptedTransport()
        let client = try TallyClient(configuration: configuration, transport: quick)
        let running = Task { try await client.run() }
        for _ in 0..<25 { await client.increment(key: UUID(), by: 2) }
        let started = ContinuousClock.now
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete && report.statistics.sent == 25)
        #expect(ContinuousClock.now - started < .seconds(20), "not the 60 s flush timer")

        // A daemon that never answers: the bound ends the flush and the report lists it all.
        configuration.shutdownTimeoutSeconds = 0.3
        let stalled = ScriptedTransport(stalled: true)
        let stuck = try TallyClient(configuration: configuration, transport: stalled)
        let stuckRun = Task { try await stuck.run() }
        let keys = (0..<25).map { _ in UUID() }
        for key in keys { await stuck.increment(key: key, by: 2) }
        let stopping = ContinuousClock.now
        let partial = await stuck.shutdown()
        try await stuckRun.value
        let elapsed = ContinuousClock.now - stopping
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(8), "the 0.3 s bound (slack for a loaded machine): \(elapsed)")
        #expect(!partial.isComplete && partial.undeliveredCalls == 25 && partial.statistics.sent == 0)
        let reported = partial.undelivered.flatMap(\.lines)
        #expect(Set(reported.map(\.key)) == Set(keys) && reported.allSatisfy { $0.value == 2 })
        #expect(await stuck.increment(key: UUID()) == .closed)
    }

    @Test func backoffIsCappedJitteredAndHonoursRetryAfter() {
        let backoff = Backoff(baseSeconds: 0.05, maxSeconds: 2)
        #expect(backoff.ceilingSeconds(attempt: 1) == 0.05 && backoff.ceilingSeconds(attempt: 3) == 0.2)
        #expect(backoff.ceilingSeconds(attempt: 100) == 2)
        var generator = SystemRandomNumberGenerator()
        let delays = (0..<200).map { _ in backoff.delay(attempt: 10, using: &generator) }
        #expect(delays.allSatisfy { $0 <= .seconds(2) } && Set(delays).count > 100, "capped and spread")
        #expect(backoff.delay(attempt: 1, atLeast: .seconds(1), using: &generator) >= .seconds(1))
        #expect(backoff.delay(attempt: 1, atLeast: .seconds(30), using: &generator) == .seconds(2), "the cap wins")
    }

    @Test func bodiesAreTheStrictNDJSONTheDaemonTakes() {
        let key = UUID(uuidString: "0B5E55ED-0000-4000-8000-00000000C0DE")!
        let batch = IncrementBatch(id: "x", lines: [IncrementLine(key: key, value: 9_223_372_036_854_775_807),
                                                    IncrementLine(key: key, value: 1)], calls: 2)
        #expect(String(buffer: NDJSONBody.encode(batch)) == """
            {"key":"0b5e55ed-0000-4000-8000-00000000c0de","value":9223372036854775807}
            {"key":"0b5e55ed-0000-4000-8000-00000000c0de","value":1}

            """)
    }
}
