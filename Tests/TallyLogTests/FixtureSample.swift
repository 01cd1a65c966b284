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

    /// The version-2 sample: a raw single record, then one frame of three appends: a tagged
    /// request of three increments, an untagged one, and a tagged retry of one. Distinct keys
    /// and values keep lz4 from shrinking it, so the sample is byte-exact on any lz4.
    static let v2Frames: [[Append]] = [
        [Append(records: batches[0])],
        [Append(records: [
            LogRecord(key: LogKey(UUID(uuidString: "3f2b8e1c-47a9-4d06-9c1e-5a7f0b2d8e43")!), value: 1, arrivalMillis: 1_764_547_200_001),
            LogRecord(key: LogKey(UUID(uuidString: "a8d41f97-2c6e-4b53-81f0-e9c37a5b6d12")!), value: 2, arrivalMillis: 1_764_547_213_377),
            LogRecord(key: LogKey(UUID(uuidString: "5c90e2a7-d813-4f6b-a4c8-17b5e3f9028d")!), value: 3, arrivalMillis: 1_764_547_229_041),
        ],
                tag: RequestTag(id: "order-0001", digest: 0x0123_4567_89ab_cdef)),
         Append(records: [LogRecord(key: LogKey(high: 0x1111_2222_3333_4444, low: 0x5555_6666_7777_8888),
                                    value: 40, arrivalMillis: 1_764_547_260_123)]),
         Append(records: [LogRecord(key: LogKey(high: 0x9999_aaaa_bbbb_cccc, low: 0xdddd_eeee_ffff_0001),
                                    value: 50, arrivalMillis: 1_764_547_261_456)],
                tag: RequestTag(id: "retry-7f3a", digest: 0xfedc_ba98_7654_3210))],
    ]
}
