import Testing
@testable import TallyCore

/// The deadline scheduler's model of a checkpoint pass: fixed part + cost per row, learnt
/// from recent passes, with a margin that grows with its own errors.
@Suite struct PassPredictorTests {
    static func seconds(_ duration: Duration) -> Double { PassPredictor.seconds(duration) }

    @Test func beforeAnyPassItAssumesASlowDatabase() {
        let predictor = PassPredictor()
        // 7,500 rows per second: half of what a debug build reached on a saturated machine.
        #expect(abs(Self.seconds(predictor.duration(forRows: 150_000)) - 20.05) < 0.001)
        #expect(predictor.margin(forRows: 0) == .seconds(1) + .nanoseconds(12_500_000))
    }

    @Test func aPassIsPredictedFromTheRowsItWillCarry() {
        var predictor = PassPredictor()
        predictor.record(rows: 0, duration: .milliseconds(40), predicted: .milliseconds(40))
        predictor.record(rows: 10_000, duration: .milliseconds(240), predicted: .milliseconds(240))
        predictor.record(rows: 100_000, duration: .milliseconds(1_040), predicted: .milliseconds(1_040))
        // Fixed part: the shortest pass (40 ms). Per row: the highest recent cost, 20 µs.
        #expect(abs(Self.seconds(predictor.duration(forRows: 0)) - 0.04) < 0.001)
        #expect(abs(Self.seconds(predictor.duration(forRows: 200_000)) - 4.04) < 0.001)
        #expect(predictor.duration(forRows: 200_000) > predictor.duration(forRows: 100_000),
                "a bigger table is predicted to take longer, so it starts earlier")
    }

    @Test func theMarginGrowsWithTheWorstRecentUnderestimateAndIsCapped() {
        var predictor = PassPredictor(baseMargin: .milliseconds(500))
        predictor.uncertainty = 0
        predictor.record(rows: 50_000, duration: .milliseconds(1_800), predicted: .milliseconds(1_000))
        #expect(predictor.margin(forRows: 0) == .milliseconds(1_300))
        predictor.record(rows: 50_000, duration: .milliseconds(900), predicted: .milliseconds(1_000))  // overestimates never shrink it
        #expect(predictor.margin(forRows: 0) == .milliseconds(1_300))
        predictor.record(rows: 50_000, duration: .seconds(20), predicted: .seconds(1))
        #expect(predictor.margin(forRows: 0) == .milliseconds(3_500), "at most maxErrorMargin (3 s) on top of the base")
    }

    @Test func aLargerPassGetsALargerMarginForItsUncertainty() {
        var predictor = PassPredictor(baseMargin: .milliseconds(500))
        predictor.record(rows: 100_000, duration: .seconds(2), predicted: .seconds(2))
        #expect(predictor.margin(forRows: 200_000) > predictor.margin(forRows: 10_000))
        let expected = 0.5 + 0.25 * PassPredictor.seconds(predictor.duration(forRows: 200_000))
        #expect(abs(PassPredictor.seconds(predictor.margin(forRows: 200_000)) - expected) < 0.001)
    }

    @Test func theLatestStartComesEarlierForMoreRows() {
        var predictor = PassPredictor()
        predictor.record(rows: 100_000, duration: .seconds(1), predicted: .seconds(1))
        let oldest = ContinuousClock.now
        let few = predictor.latestStart(oldest: oldest, rows: 1_000, bound: .seconds(10))
        let many = predictor.latestStart(oldest: oldest, rows: 400_000, bound: .seconds(10))
        #expect(many < few)
        #expect(few <= oldest + .seconds(10) - predictor.margin(forRows: 1_000))
    }

    @Test func oldPassesAreForgotten() {
        var predictor = PassPredictor()
        predictor.record(rows: 10_000, duration: .seconds(10), predicted: .seconds(1))
        for _ in 0..<PassPredictor.sampleCount {
            predictor.record(rows: 10_000, duration: .milliseconds(100), predicted: .milliseconds(100))
        }
        #expect(predictor.samples.count == PassPredictor.sampleCount)
        #expect(predictor.margin(forRows: 0) == predictor.baseMargin + .nanoseconds(12_500_000), "only the uncertainty of the fixed part")
        #expect(abs(Self.seconds(predictor.duration(forRows: 10_000)) - 0.1) < 0.001)
    }
}
