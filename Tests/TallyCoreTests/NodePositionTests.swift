import Foundation
import Testing
import TallyCore
import TallyLog

/// Every rule that decides whether a stored checkpoint LSN fits this node's log.
@Suite struct NodePositionTests {
    let fence = CheckpointFence.Marks(attempted: 120, confirmed: 100)
    let log = NodePosition.LogExtent(firstLSN: 51, endLSN: 150)

    @Test func aStoredLSNWithinTheLogIsCountedFrom() {
        #expect(NodePosition.atStart(stored: 100, log: log, fence: fence, takenSinceStart: nil)
            == .continueAfter(100, regressedFrom: nil))
        #expect(NodePosition.atStart(stored: 50, log: log, fence: nil, takenSinceStart: nil)
            == .continueAfter(50, regressedFrom: nil), "the first record on disk is the next one")
    }

    @Test func aLogWithoutSegmentsContinuesAfterWhateverIsStored() {
        let empty = NodePosition.LogExtent(firstLSN: nil, endLSN: 0)
        #expect(NodePosition.atStart(stored: 100, log: empty, fence: nil, takenSinceStart: nil)
            == .continueAfter(100, regressedFrom: nil))
    }

    @Test func aStoredLSNPastTheLogsEndIsRefused() {
        #expect(NodePosition.atStart(stored: 151, log: log, fence: nil, takenSinceStart: 140...150)
            == .refuse(.aheadOfLog(storedLSN: 151, logEnd: 150, takenSinceStart: 140...150)))
        // Even when the log holds no record, once it has a segment its end counts.
        let emptySegment = NodePosition.LogExtent(firstLSN: 101, endLSN: 100)
        #expect(NodePosition.atStart(stored: 150, log: emptySegment, fence: nil, takenSinceStart: nil)
            == .refuse(.aheadOfLog(storedLSN: 150, logEnd: 100, takenSinceStart: nil)))
    }

    @Test func aStoredLSNBeforeTheFirstRecordOnDiskIsRefused() {
        #expect(NodePosition.atStart(stored: 49, log: log, fence: nil, takenSinceStart: nil)
            == .refuse(.recordsMissing(storedLSN: 49, firstLSNOnDisk: 51)))
        #expect(NodePosition.later(stored: 0, known: 100, inDoubtTarget: nil, log: log)
            == .refuse(.recordsMissing(storedLSN: 0, firstLSNOnDisk: 51)))
    }

    @Test func aStoredLSNAboveEverythingThisNodeSentWasPutThereBySomeoneElse() {
        #expect(NodePosition.atStart(stored: 121, log: log, fence: fence, takenSinceStart: nil)
            == .refuse(.movedElsewhere(storedLSN: 121, knownLSN: 100, logEnd: 150)))
        #expect(NodePosition.later(stored: 130, known: 120, inDoubtTarget: nil, log: log)
            == .refuse(.movedElsewhere(storedLSN: 130, knownLSN: 120, logEnd: 150)))
        #expect(NodePosition.later(stored: 130, known: 120, inDoubtTarget: 140, log: log)
            == .refuse(.movedElsewhere(storedLSN: 130, knownLSN: 120, logEnd: 150)),
                "only the in-doubt target itself is ours")
    }

    @Test func anInDoubtCommitIsOursEitherWay() {
        #expect(NodePosition.later(stored: 140, known: 120, inDoubtTarget: 140, log: log) == .continueAfter(140, regressedFrom: nil))
        #expect(NodePosition.later(stored: 120, known: 120, inDoubtTarget: 140, log: log) == .continueAfter(120, regressedFrom: nil))
    }

    @Test func aStoredLSNThatWentBackIsReplayedWhileTheLogHoldsWhatFollows() {
        #expect(NodePosition.later(stored: 60, known: 120, inDoubtTarget: nil, log: log) == .continueAfter(60, regressedFrom: 120))
        #expect(NodePosition.atStart(stored: 80, log: log, fence: fence, takenSinceStart: nil)
            == .continueAfter(80, regressedFrom: 100))
    }

    @Test func everyRefusalSaysWhatToDo() {
        let errors: [NodePositionError] = [
            .aheadOfLog(storedLSN: 9, logEnd: 5, takenSinceStart: 3...5),
            .recordsMissing(storedLSN: 1, firstLSNOnDisk: 9),
            .movedElsewhere(storedLSN: 9, knownLSN: 5, logEnd: 7),
        ]
        for error in errors {
            #expect(error.description.contains("docs/operations.md"), "\(error)")
        }
        #expect(errors[0].description.contains("--salvage-from 3"))
        #expect(errors[1].description.contains("--accept-gap"))
        #expect(errors[2].description.contains("--salvage-from 6"))
    }
}
