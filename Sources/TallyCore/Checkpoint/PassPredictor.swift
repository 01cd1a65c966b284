/// Predicts how long the next checkpoint pass will take, from what it will carry, so that
/// the scheduler starts it early enough for its COMMIT to land within the freshness bound.
///
/// A pass costs a fixed part (roll, queries, COMMIT, read-back) plus a part per pending
/// (key, day) row (sorting, sending, upserting). Both are learnt from recent passes: the
/// fixed part from the shortest recent pass with few rows, the per-row cost as the highest
/// recent cost per row beyond it, so the estimate leans long when the machine gets busier. The margin grows
/// with the worst recent underestimate: a prediction that was wrong by 800 ms makes the next
/// start 800 ms earlier still.
///
/// A plain value: `Checkpointer` owns one under its lock; `PassPredictorTests` drive it.
public struct PassPredictor: Sendable, Equatable {
    public struct Sample: Sendable, Equatable {
        public var rows: Int
        public var duration: Duration
        public var predicted: Duration
    }

    /// Passes remembered (a bound on memory, and how fast old conditions are forgotten).
    public static let sampleCount = 16
    /// While no recent pass carried enough rows to measure: 7,500 rows per second, half of
    /// what a debug build achieved on two cores saturated by ingest (a slower CI machine
    /// overran 10 s with 15,000 assumed). Pessimistic on purpose: it
    /// decides the first large pass after a quiet spell (a load spike), and starting that
    /// one early costs one extra transaction, while starting it late breaks the promise.
    static let defaultSecondsPerRow = 1.0 / 7_500
    static let defaultFixedSeconds = 0.05
    /// Passes with fewer rows say little about the cost per row.
    static let minimumRowsForRate = 1_000

    /// The margin before any error was observed, and the most error it ever adds.
    public var baseMargin: Duration
    public var maxErrorMargin: Duration = .seconds(3)
    /// A pass's duration is uncertain in proportion to its size (the machine may be busier
    /// than when the cost was learnt): this fraction of the prediction joins the margin.
    public var uncertainty = 0.25
    public private(set) var samples: [Sample] = []

    public init(baseMargin: Duration = .seconds(1)) {
        self.baseMargin = baseMargin
    }

    /// Records a finished pass: its rows, its duration up to the COMMIT, and what
    /// `duration(forRows:)` had predicted for it when it started.
    public mutating func record(rows: Int, duration: Duration, predicted: Duration) {
        assert(rows >= 0 && duration >= .zero)
        samples.append(Sample(rows: rows, duration: duration, predicted: predicted))
        if samples.count > Self.sampleCount { samples.removeFirst(samples.count - Self.sampleCount) }
    }

    /// The shortest recent pass with few rows, and never more than the default: a fixed part
    /// guessed too small only makes the cost per row, and so the estimate, larger.
    var fixedSeconds: Double {
        let small = samples.filter { $0.rows < Self.minimumRowsForRate }.map { Self.seconds($0.duration) }
        return min(small.min() ?? Self.defaultFixedSeconds, Self.defaultFixedSeconds)
    }

    var secondsPerRow: Double {
        let fixed = fixedSeconds
        let rates = samples.filter { $0.rows >= Self.minimumRowsForRate }
            .map { max(0, Self.seconds($0.duration) - fixed) / Double($0.rows) }
        return rates.max() ?? Self.defaultSecondsPerRow
    }

    /// The expected duration, up to its COMMIT, of a pass carrying `rows` rows.
    public func duration(forRows rows: Int) -> Duration {
        Self.duration(seconds: fixedSeconds + Double(rows) * secondsPerRow)
    }

    /// How much earlier than the prediction to start for a pass of `rows` rows: the base
    /// margin plus the larger of the worst recent underestimate and the prediction's
    /// uncertainty, capped.
    public func margin(forRows rows: Int) -> Duration {
        let worstUnderestimate = samples.map { $0.duration - $0.predicted }.max() ?? .zero
        let uncertain = Self.duration(seconds: Self.seconds(duration(forRows: rows)) * uncertainty)
        return baseMargin + min(max(worstUnderestimate, uncertain, .zero), maxErrorMargin)
    }

    /// When a pass carrying `rows` rows must start for its COMMIT to land within `bound` of
    /// `oldest` (the arrival of the oldest pending increment).
    public func latestStart(oldest: ContinuousClock.Instant, rows: Int, bound: Duration) -> ContinuousClock.Instant {
        oldest + bound - duration(forRows: rows) - margin(forRows: rows)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    static func duration(seconds: Double) -> Duration {
        .nanoseconds(Int64(min(seconds, 3_600) * 1e9))
    }
}
