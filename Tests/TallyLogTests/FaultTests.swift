import Foundation
import Synchronization
import Testing
@testable import TallyLog

/// Write and fdatasync failures: the log must stop, fail every waiting append, refuse later
/// ones, and leave nothing on disk that a client was not told is stored.
@Suite struct FaultTests {
    /// Fails the `failAt`-th call (1-based); the calls before it proceed. While the failing
    /// call runs it sleeps a little so that other appends queue behind it.
    final class Countdown: Sendable {
        let calls = Atomic(0)
        let failAt: Int
        init(failAt: Int) { self.failAt = failAt }
        func isFailingCall() -> Bool {
            let call = calls.add(1, ordering: .relaxed).newValue
            if call == failAt { usleep(100_000) }
            return call == failAt
        }
    }

    private func runFaultScenario(_ faults: (Countdown) -> LogFaults) async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        let countdown = Countdown(failAt: 3)
        config.faults = faults(countdown)
        let changes = Mutex<[LogStateChange]>([])
        config.onStateChange = { change in changes.withLock { $0.append(change) } }
        let log = try Log.open(config)
        try await log.append(records(2))
        try await log.append(records(2, startingAt: 2))

        // The third flush fails; appends queued behind it must fail too.
        let outcomes = await withTaskGroup(of: (LogRecord, Result<LSN, any Error>).self) { group in
            for index in 0..<32 {
                group.addTask {
                    let record = records(1, startingAt: 100 + index)[0]
                    do { return (record, .success(try await log.append(record))) } catch { return (record, .failure(error)) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let acknowledged = outcomes.compactMap { outcome -> LogRecord? in
            if case .success = outcome.1 { return outcome.0 } else { return nil }
        }
        #expect(acknowledged.isEmpty, "every append waiting on or behind the failed flush fails")
        for (_, result) in outcomes {
            if case .failure(let error) = result {
                guard case LogError.stopped = error else {
                    Issue.record("unexpected error \(error)")
                    continue
                }
            }
        }
        #expect(log.stopReason != nil)
        #expect(changes.withLock { $0 } == [.stopped(log.stopReason!)], "the owner hears of it once, to shut down")
        await #expect(throws: LogError.self) { try await log.append(records(1, startingAt: 999)) }
        await #expect(throws: LogError.self) { try await log.rollSegment() }
        await log.close()

        // Reopened, the log holds exactly what was acknowledged before the failure, and the
        // writer itself cut what it failed to write: the reopen finds no torn tail to cut.
        let reopened = try Log.open(configuration(dir.path))
        #expect(reopened.openReport.tornTail == nil, "the writer cut the refused frame itself")
        await reopened.close()
        #expect(try readAll(dir.path).map(\.1) == records(4))
    }

    @Test func aFailedFdatasyncStopsTheLog() async throws {
        try await runFaultScenario { countdown in
            LogFaults(sync: { countdown.isFailingCall() ? EIO : nil })
        }
    }

    @Test func aFailedWriteStopsTheLog() async throws {
        try await runFaultScenario { countdown in
            LogFaults(write: { _ in countdown.isFailingCall() ? .fail(errno: EIO) : .proceed })
        }
    }

    @Test func aTornWriteStopsTheLogAndLeavesNoPartialFrame() async throws {
        try await runFaultScenario { countdown in
            LogFaults(write: { size in countdown.isFailingCall() ? .tear(afterBytes: size / 2, errno: EIO) : .proceed })
        }
    }
}
