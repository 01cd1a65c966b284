import Foundation
import TallyLog

// Usage: LargeLog <data-dir> <records> <distinct-keys>
//
// Writes a node's data directory (`node-id` and `wal/`) holding `records` increments of 1 over
// `distinct-keys` random keys, through the real `Log` (frames of 4,096 records, lz4, one
// fdatasync each), as a daemon that took that many increments would have left it. The large-log
// benchmark (scripts/bench-large-log.py) then times `tally serve`'s start-up and `tally recover`
// on it. Keys are drawn from a fixed seed, so two runs write the same log.

let arguments = CommandLine.arguments
guard arguments.count == 4, let recordCount = Int(arguments[2]), let keyCount = Int(arguments[3]),
      recordCount > 0, keyCount > 0 else {
    FileHandle.standardError.write(Data("usage: LargeLog <data-dir> <records> <distinct-keys>\n".utf8))
    exit(2)
}
let dataDirectory = arguments[1]
let node = UUID()
try FileManager.default.createDirectory(atPath: dataDirectory + "/wal", withIntermediateDirectories: true)
try (node.uuidString.lowercased() + "\n").write(toFile: dataDirectory + "/node-id", atomically: true, encoding: .utf8)

/// A small, fast, seeded generator (SplitMix64): the same log on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let framesRecords = 4_096
let log = try Log.open(LogConfiguration(directory: dataDirectory + "/wal", nodeID: LogKey(node)))
var generator = SplitMix64(state: 0x7a11)
let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
let started = ContinuousClock.now
var written = 0
var batch: [LogRecord] = []
batch.reserveCapacity(framesRecords)
while written < recordCount {
    batch.removeAll(keepingCapacity: true)
    for _ in 0..<min(framesRecords, recordCount - written) {
        // Keys 1…keyCount in the high half, a fixed low half: a UUID-shaped key per index.
        let index = generator.next() % UInt64(keyCount) + 1
        batch.append(LogRecord(key: LogKey(high: index, low: 0x7a11_0000_0000_0001), value: 1, arrivalMillis: nowMillis))
    }
    _ = try await log.append(batch)
    written += batch.count
    if written % 10_000_000 < framesRecords { print("written \(written) records") }
}
await log.close()
let seconds = Double((ContinuousClock.now - started).components.seconds)
print("node=\(node.uuidString.lowercased()) records=\(written) keys=\(keyCount) seconds=\(Int(seconds))")
