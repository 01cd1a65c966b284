import Foundation

/// Says how far a long read of the log has got, at most every `intervalSeconds`: the daemon
/// logs it at start-up and after an outage, `tally recover` prints it. Not thread-safe: one
/// reader thread owns it.
public final class ProgressReport {
    public struct Point: Sendable, Equatable {
        /// The last LSN read, the LSN the read goes to, and the first one it started from.
        public var lsn: UInt64
        public var target: UInt64
        public var first: UInt64
        public var elapsedSeconds: Double

        public var fraction: Double {
            target <= first ? 1 : min(1, Double(lsn + 1 - first) / Double(target + 1 - first))
        }

        public var recordsPerSecond: Double {
            elapsedSeconds > 0 ? Double(lsn + 1 - first) / elapsedSeconds : 0
        }

        public var description: String {
            String(format: "LSN %llu of %llu (%.1f%%), %.1f M records/s", lsn, target, fraction * 100, recordsPerSecond / 1e6)
        }
    }

    private let intervalSeconds: Double
    private let report: (Point) -> Void
    private let first: UInt64
    private let target: UInt64
    private let started = Date()
    private var lastReport = Date()

    public init(from first: UInt64, to target: UInt64, intervalSeconds: Double, report: @escaping (Point) -> Void) {
        self.first = first
        self.target = target
        self.intervalSeconds = intervalSeconds
        self.report = report
    }

    /// Called often (every million records); reports only when the interval has passed.
    public func reached(_ lsn: UInt64) {
        let now = Date()
        guard now.timeIntervalSince(lastReport) >= intervalSeconds else { return }
        lastReport = now
        report(Point(lsn: lsn, target: target, first: first, elapsedSeconds: now.timeIntervalSince(started)))
    }
}
