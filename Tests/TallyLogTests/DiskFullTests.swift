import Foundation
import Synchronization
import Testing
@testable import TallyLog

/// A full disk (ENOSPC on write, before any fdatasync) is waited out, not fatal: the partial
/// frame is cut, everything waiting is refused with `.diskFull`, and appends are taken again
/// once a probe finds space — without reopening the log.
@Suite struct DiskFullTests {
    /// The disk as the faults see it: full or not, and how often the writer probed.
    final class Disk: Sendable {
        let full = Atomic(false)
        let probes = Atomic(0)
        let writes = Atomic(0)
        /// The write that finds the disk full (1-based); it tears half-way.
        let fillsAtWrite: Int
        init(fillsAtWrite: Int) { self.fillsAtWrite = fillsAtWrite }

        var faults: LogFaults {
            LogFaults(
                write: { size in
                    let call = self.writes.add(1, ordering: .relaxed).newValue
                    if call == self.fillsAtWrite {
                        self.full.store(true, ordering: .relaxed)
                        usleep(100_000)  // let other appends queue behind the failing frame
                    }
                    return self.full.load(ordering: .relaxed) ? .tear(afterBytes: size / 2, errno: ENOSPC) : .proceed
                },
                probe: {
                    self.probes.add(1, ordering: .relaxed)
                    return self.full.load(ordering: .relaxed) ? ENOSPC : nil
                })
        }
    }

    @Test func aFullDiskRefusesWritesUntilSpaceReturnsThenTheLogGoesOn() async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        let disk = Disk(fillsAtWrite: 3)
        config.faults = disk.faults
        config.spaceProbeInterval = .milliseconds(20)
        let changes = Mutex<[LogStateChange]>([])
        config.onStateChange = { change in changes.withLock { $0.append(change) } }
        let log = try Log.open(config)
        try await log.append(records(2))
        let sizeBeforeBytes = log.sizeBytes
        try await log.append(records(2, startingAt: 2))

        let outcomes = await withTaskGroup(of: Result<LSN, any Error>.self) { group in
            for index in 0..<32 {
                group.addTask {
                    do { return .success(try await log.append(records(1, startingAt: 100 + index)[0])) } catch { return .failure(error) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for outcome in outcomes {
            guard case .failure(let error) = outcome, case LogError.diskFull = error else {
                Issue.record("every append waiting on or behind the full disk is refused as diskFull: \(outcome)")
                continue
            }
        }
        #expect(log.diskFullReason != nil && log.stopReason == nil && !log.acceptsAppends)
        #expect(log.sizeBytes > sizeBeforeBytes && log.durableLSN == 4)
        await #expect(throws: LogError.self) { try await log.append(records(1, startingAt: 500)) }

        // The writer keeps probing while the disk stays full; nothing it does is fatal.
        let probesWhileFull = disk.probes.load(ordering: .relaxed)
        try await Task.sleep(for: .milliseconds(200))
        #expect(disk.probes.load(ordering: .relaxed) > probesWhileFull)
        #expect(!log.acceptsAppends)

        disk.full.store(false, ordering: .relaxed)
        try await waitUntil(seconds: 5) { log.acceptsAppends }
        #expect(try await log.append(records(1, startingAt: 7)[0]) == 5, "LSNs go on where the durable log ended")
        #expect(changes.withLock { $0 }.count == 2)
        #expect(changes.withLock { $0 }.last == .spaceReturned)
        if case .diskFull = changes.withLock({ $0 }).first {} else { Issue.record("diskFull reported first") }
        await log.close()

        let reopened = try Log.open(configuration(dir.path))
        #expect(reopened.openReport.tornTail == nil, "the writer cut the partial frame itself")
        await reopened.close()
        #expect(try readAll(dir.path).map(\.1) == records(4) + [records(1, startingAt: 7)[0]])
    }

    @Test func theRealProbeFindsSpaceOnAHealthyDiskAndLeavesNoFileBehind() async throws {
        let dir = TemporaryDirectory()
        var config = configuration(dir.path)
        let disk = Disk(fillsAtWrite: 2)
        config.faults = LogFaults(write: disk.faults.write)  // the real probe: writes and deletes a file
        config.spaceProbeInterval = .milliseconds(20)
        let changes = Mutex<[LogStateChange]>([])
        config.onStateChange = { change in changes.withLock { $0.append(change) } }
        let log = try Log.open(config)
        try await log.append(records(1))
        await #expect(throws: LogError.self) { try await log.append(records(1, startingAt: 1)) }
        // The disk is not really full: the first probe finds space (the writes stay faulty
        // until the flag is cleared, so the next append may find the disk full again).
        disk.full.store(false, ordering: .relaxed)
        try await waitUntil(seconds: 5) { changes.withLock { $0.last } == .spaceReturned }
        #expect(try await log.append(records(1, startingAt: 2)[0]) == 2)
        await log.close()
        #expect(!FileManager.default.fileExists(atPath: dir.file(SpaceProbe.fileName)))
    }

    private func waitUntil(seconds: Int, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within \(seconds) s")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
