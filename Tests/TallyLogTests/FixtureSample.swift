import Foundation
@testable import TallyLog

/// The records of `Fixtures/sample-v1/00000000000000000001.wal`, the committed sample of
/// format version 1 that `docs/log-format.md` walks through byte by byte.
enum FixtureSample {
    static let node = LogKey(UUID(uuidString: "7a11e000-0000-4000-8000-000000000001")!)
    static let hotKey = LogKey(UUID(uuidString: "0b5e55ed-0000-4000-8000-00000000c0de")!)

    /// Three appends, so three frames: one stored raw (a single record of distinct bytes
    /// does not compress), then two lz4 frames (eight increments of one hot key; a pair).
    static let batches: [[LogRecord]] = [
        [LogRecord(key: LogKey(UUID(uuidString: "123e4567-e89b-12d3-a456-426614174000")!),
                   value: 0x1122_3344_5566_7788, arrivalMillis: 1_764_000_000_000)],
        (0..<8).map { LogRecord(key: hotKey, value: 5, arrivalMillis: 1_764_000_000_100 + Int64($0)) },
        [LogRecord(key: LogKey(UUID(uuidString: "ffffffff-ffff-4fff-bfff-ffffffffffff")!),
                   value: Int64.max, arrivalMillis: 1_764_000_001_000),
         LogRecord(key: hotKey, value: 2, arrivalMillis: 1_764_000_001_001)],
    ]
}
