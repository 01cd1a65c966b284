import Foundation
import GRPCCore
import Synchronization
import Testing
import TallyCore
import TallyIngest
import TallyLog
import TallyProtos

/// The `Increment` stream through a real client over a socket, against a real log.
@Suite struct IncrementStreamTests {
    let key = UUID().uuidString.lowercased()

    @Test func acksComeInRequestOrderEachAfterItsRequestIsDurable() async throws {
        let harness = try await GRPCHarness()
        let requests = (1...20).map { value in increments([Int64(value), Int64(value)], key: key) }
        let outcome = try await harness.run { tally, _ in try await stream(tally, requests) }
        #expect(outcome.error == nil)
        #expect(outcome.acks.map(\.firstLsn) == Array(stride(from: 1, through: 39, by: 2)))
        #expect(outcome.acks.allSatisfy { $0.count == 2 && $0.lastLsn == $0.firstLsn + 1 })
        #expect(try harness.loggedRecords().count == 40)
        await harness.node.log.close()
    }

    @Test func aBadRequestEndsTheStreamNamingItsIndexAndFieldAfterTheEarlierOnesAreAcked() async throws {
        let harness = try await GRPCHarness()
        var badRequest = increments([1, 1], key: key)
        badRequest.increments[1].key = "not-a-uuid"
        let requests = [increments([1], key: key), increments([2], key: key), badRequest, increments([3], key: key)]
        let outcome = try await harness.run { tally, _ in try await stream(tally, requests) }
        #expect(outcome.acks.count == 2, "the requests before it are acked")
        #expect(outcome.error?.code == .invalidArgument)
        #expect(outcome.error?.message.contains("request 2") == true && outcome.error?.message.contains("increments[1].key") == true,
                "\(String(describing: outcome.error))")
        #expect(try harness.loggedRecords().map(\.value) == [1, 2], "nothing of the bad one, nor after it")
        await harness.node.log.close()
    }

    @Test(arguments: [
        ([Int64](), "no increments"), ([0], "increments[0].value"), ([1, -5], "increments[1].value"),
    ])
    func everyRefusalIsInvalidArgument(_ values: [Int64], _ named: String) async throws {
        let harness = try await GRPCHarness()
        let outcome = try await harness.run { tally, _ in try await stream(tally, [increments(values, key: key)]) }
        #expect(outcome.error?.code == .invalidArgument && outcome.error?.message.contains(named) == true,
                "\(String(describing: outcome.error))")
        #expect(try harness.loggedRecords().isEmpty)
        await harness.node.log.close()
    }

    @Test func overTheRequestLimitIsRefused() async throws {
        var setup = try await GRPCHarness()
        setup.maxBatchIncrements = 3
        let harness = setup
        let outcome = try await harness.run { tally, _ in try await stream(tally, [increments([1, 1, 1, 1], key: key)]) }
        #expect(outcome.error?.code == .invalidArgument)
        await harness.node.log.close()
    }

    @Test func aRequestIdMakesARetryCountOnceAndOtherIncrementsGetAlreadyExists() async throws {
        let harness = try await GRPCHarness()
        var firstRequest = increments([4, 5], key: key)
        firstRequest.requestID = "grpc-batch-1"
        var conflictingRequest = increments([6], key: key)
        conflictingRequest.requestID = "grpc-batch-1"
        let first = firstRequest
        let conflicting = conflictingRequest
        let (once, again, conflict) = try await harness.run { tally, _ in
            (try await stream(tally, [first]), try await stream(tally, [first]), try await stream(tally, [conflicting]))
        }
        #expect(once.acks.first?.requestID == "grpc-batch-1" && once.acks.first?.firstLsn == 1)
        #expect(again.acks.first?.firstLsn == 1 && again.acks.first?.lastLsn == 2, "the retry gets the first LSNs")
        #expect(conflict.error?.code == .alreadyExists)
        #expect(try harness.loggedRecords().map(\.value) == [4, 5])
        await harness.node.log.close()
    }

    @Test func withoutAValidKeyTheCallIsUnauthenticatedAndOverTheRateResourceExhausted() async throws {
        let keys = try APIKeys(keys: ["grpc-secret"])
        let harness = try await GRPCHarness(gate: RequestGate(keys: keys, limiter: RateLimiter(ratePerSecond: 0.001, burst: 2),
                                                              trustedProxies: []))
        let request = increments([1], key: key)
        let (missing, wrong, limited) = try await harness.run { tally, _ in
            let missing = try await stream(tally, [request])
            let wrong = try await stream(tally, [request], metadata: ["authorization": "Bearer nope"])
            let limited = try await stream(tally, [request, request, request], metadata: ["authorization": "Bearer grpc-secret"])
            return (missing, wrong, limited)
        }
        #expect(missing.error?.code == .unauthenticated && wrong.error?.code == .unauthenticated)
        #expect(limited.acks.count == 2 && limited.error?.code == .resourceExhausted)
        #expect(try harness.loggedRecords().count == 2)
        await harness.node.log.close()
    }

    @Test func whenTheLogCannotTakeWritesTheStreamEndsUnavailable() async throws {
        let harness = try await GRPCHarness()
        await harness.node.log.close()
        let outcome = try await harness.run { tally, _ in try await stream(tally, [increments([1], key: key)]) }
        #expect(outcome.error?.code == .unavailable)
        #expect(try harness.loggedRecords().isEmpty)
    }

    @Test func aStreamKeepsAtMostItsWindowOfRequestsInFlight() async throws {
        // A slow disk: each frame's sync takes 20 ms, so a client that writes as fast as it
        // can would pile every request into the log's queue; the window holds it back.
        var setup = try await GRPCHarness(logFaults: LogFaults(sync: {
            usleep(20_000)
            return nil
        }))
        setup.streamWindow = 4
        let harness = setup
        let window = harness.streamWindow
        let acks = try await harness.run { tally, _ in
            try await tally.increment { writer in
                for value in 1...200 { try await writer.write(increments(Array(repeating: Int64(value), count: 100), key: key)) }
            } onResponse: { response in
                var acks = 0
                for try await _ in response.messages { acks += 1 }
                return acks
            }
        }
        #expect(acks == 200, "every request is acked")
        #expect(try harness.loggedRecords().count == 20_000)
        // One stream, so a frame holds only requests that were in flight together: never
        // more than the window's worth (100 records each).
        let frames = try SegmentContents.segmentPaths(in: harness.directory.path + "/wal")
            .flatMap { try SegmentContents.read(path: $0).scan.frames.map { Int($0.header.recordCount) } }
        #expect(frames.max() ?? 0 <= window * 100, "largest frame \(frames.max() ?? 0) records")
        #expect(frames.count >= 200 / window, "\(frames.count) frames")
        await harness.node.log.close()
    }

    @Test func aClientThatCancelsMidStreamLeavesOnlyWholeRequestsBehind() async throws {
        let harness = try await GRPCHarness()
        let heard = try await harness.run { tally, _ in
            let task = Task {
                try await tally.increment { writer in
                    for value in 1...1_000 { try await writer.write(increments([Int64(value), Int64(value)], key: key)) }
                } onResponse: { response in
                    var acks = 0
                    for try await _ in response.messages { acks += 1 }
                    return acks
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            task.cancel()
            return (try? await task.value) ?? -1
        }
        _ = heard
        try await Task.sleep(for: .milliseconds(200))  // requests already submitted finish
        let records = try harness.loggedRecords()
        #expect(records.count % 2 == 0, "a request is all or nothing: \(records.count) records")
        #expect(records.count < 2_000, "the cancel stopped the stream")
        await harness.node.log.close()
    }
}

@Suite struct GRPCReadAndHealthTests {
    @Test func countsDailyPeriodAndHealthAnswerLikeTheHTTPAPI() async throws {
        let harness = try await GRPCHarness()
        let key = UUID().uuidString.lowercased()
        let today = Day(arrivalMillis: RequestWindow.nowMillis())
        let (year, month, day) = today.components
        let answers = try await harness.run { tally, health in
            _ = try await stream(tally, [increments([.max, .max, 3], key: key)])
            let count = try await tally.getCount(.with { $0.key = key.uppercased() })
            let daily = try await tally.listDailyTotals(.with { $0.key = key; $0.from = today.iso; $0.to = today.iso })
            let period = try await tally.getPeriodTotal(.with { $0.key = key; $0.year = UInt32(year); $0.month = UInt32(month) })
            let oneDay = try await tally.getPeriodTotal(.with {
                $0.key = key; $0.year = UInt32(year); $0.month = UInt32(month); $0.day = UInt32(day)
            })
            let bad = await Result { try await tally.getCount(.with { $0.key = "nope" }) }
            let status = try await health.check(.with { $0.service = "tally.v1.Tally" })
            let unknown = await Result { try await health.check(.with { $0.service = "other" }) }
            return (count, daily, period, oneDay, bad, status, unknown)
        }
        #expect(answers.0.key == key && answers.0.total == "18446744073709551617" && answers.0.pending == "18446744073709551617")
        #expect(answers.1.days.map(\.total) == ["18446744073709551617"] && answers.1.days.first?.day == today.iso)
        #expect(answers.2.total == "18446744073709551617" && answers.2.from.hasSuffix("-01"))
        #expect(answers.3.from == today.iso && answers.3.to == today.iso)
        if case .failure(let error as RPCError) = answers.4 { #expect(error.code == .invalidArgument) } else { Issue.record("bad key accepted") }
        #expect(answers.5.status == .serving)
        if case .failure(let error as RPCError) = answers.6 { #expect(error.code == .notFound) } else { Issue.record("unknown service") }
        await harness.node.log.close()
    }
}

extension Result where Failure == any Error {
    init(_ body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
