import Benchmark
import Foundation
import TallyCore
import TallyLog

// In-process benchmarks of the log and the counting core. Every figure is meant to be read
// against the reference in the same run ("fsync floor": a 4 KiB pwrite + fdatasync),
// because the machine is shared and noisy.

/// Scratch space on the disk the log would use (not tmpfs, where fdatasync is free).
private func scratchDirectory(_ name: String) -> String {
    let base = FileManager.default.currentDirectoryPath + "/.scratch"
    let path = base + "/\(name)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func randomRecords(_ count: Int, keys: Int) -> [LogRecord] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { index in
        LogRecord(key: LogKey(high: UInt64.random(in: 0..<UInt64(keys), using: &generator), low: 0x5eed),
                  value: Int64(index % 1000 + 1), arrivalMillis: 1_764_000_000_000 + Int64(index))
    }
}

/// A closed log of `count` records in frames of `perFrame`, for replay.
private func buildLog(records count: Int, perFrame: Int, keys: Int) async -> String {
    let directory = scratchDirectory("replay")
    let log = try! Log.open(LogConfiguration(directory: directory, nodeID: LogKey(high: 1, low: 1)))
    let all = randomRecords(count, keys: keys)
    for start in stride(from: 0, to: count, by: perFrame) {
        try! await log.append(Array(all[start..<min(start + perFrame, count)]))
    }
    await log.close()
    return directory
}

/// Counts frames and keeps their write+fdatasync times (bounded), from the writer thread.
private final class FrameTally: Sendable {
    private let samples = Mutex<[Int]>([])

    func record(_ frame: DurableFrame) {
        let duration = frame.writeAndSyncDuration.components
        let micros = Int(duration.seconds) * 1_000_000 + Int(duration.attoseconds / 1_000_000_000_000)
        samples.withLock { if $0.count < 1_000_000 { $0.append(micros) } }
    }

    var syncMicroseconds: [Int] { samples.withLock { $0 } }
}

private let recordsPerFrame = BenchmarkMetric.custom("records per frame", polarity: .prefersLarger, useScalingFactor: false)
private let frameSyncMicroseconds = BenchmarkMetric.custom("frame write+fdatasync (µs)", polarity: .prefersSmaller,
                                                           useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .cpuTotal],
        maxDuration: .seconds(5),
        maxIterations: 1_000
    )

    // Reference: the cost of making 4 KiB durable by appending to a file.
    Benchmark("Reference: 4 KiB pwrite + fdatasync (append)",
              configuration: .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(3), maxIterations: 5_000)) { benchmark in
        let directory = scratchDirectory("fsync")
        let fd = open(directory + "/file", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let block = [UInt8](repeating: 0xAB, count: 4096)
        var offset = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(offset)) }
            fdatasync(fd)
            offset += 4096
        }
        benchmark.stopMeasurement()
        close(fd)
        try? FileManager.default.removeItem(atPath: directory)
    }

    // Durable appends: `appenders` tasks each appending one record at a time. One iteration
    // is 4,096 records in total, so throughput × 4,096 = records/s.
    for appenders in [1, 16, 256] {
        let recordsPerIteration = 4_096
        Benchmark("Durable append, \(appenders) concurrent appenders (4,096 records per iteration)",
                  configuration: .init(metrics: [.wallClock, .throughput, .cpuTotal, recordsPerFrame, frameSyncMicroseconds],
                                       maxDuration: .seconds(5), maxIterations: appenders == 1 ? 5 : 200)) { benchmark in
            let directory = scratchDirectory("append")
            var configuration = LogConfiguration(directory: directory, nodeID: LogKey(high: 2, low: 2))
            let frames = FrameTally()
            configuration.onDurable = { frames.record($0) }
            let log = try! Log.open(configuration)
            let perAppender = recordsPerIteration / appenders
            let records = randomRecords(perAppender, keys: 1_000_000)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<appenders {
                        group.addTask {
                            for record in records { _ = try! await log.append(record) }
                        }
                    }
                }
            }
            benchmark.stopMeasurement()
            let iterations = benchmark.scaledIterations.count
            let syncTimes = frames.syncMicroseconds
            benchmark.measurement(recordsPerFrame, recordsPerIteration * iterations / max(1, syncTimes.count))
            // One sample per frame: the table's percentiles are those of the write + fdatasync.
            for micros in syncTimes { benchmark.measurement(frameSyncMicroseconds, micros) }
            await log.close()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    // Replay: read + CRC + lz4-decode a 1 M-record log (frames of 256, random keys).
    Benchmark("Replay 1M records (read, CRC32C, lz4, decode)",
              configuration: .init(metrics: [.wallClock, .throughput, .cpuTotal], maxDuration: .seconds(10), maxIterations: 10)) { benchmark in
        let directory = await buildLog(records: 1_000_000, perFrame: 256, keys: 1_000_000)
        var checksum: Int64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try! LogReader(directory: directory).forEachRecord { _, record in checksum &+= record.value }
        }
        benchmark.stopMeasurement()
        blackHole(checksum)
        try? FileManager.default.removeItem(atPath: directory)
    }

    // The reference for the compactor: the same records summed into a standard Dictionary
    // keyed by (key, day), which is what DeltaTable used before its open-addressing table.
    Benchmark("Reference: Dictionary<(key, day), Int128> absorb 1M records, 1M distinct keys",
              configuration: .init(metrics: [.wallClock, .throughput, .cpuTotal, .peakMemoryResident],
                                   maxDuration: .seconds(10), maxIterations: 10)) { benchmark in
        let records = randomRecords(1_000_000, keys: 1_000_000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var sums: [DeltaTable.Cell: Int128] = [:]
            for record in records {
                sums[DeltaTable.Cell(key: record.key, day: Day(arrivalMillis: record.arrivalMillis)), default: 0]
                    += Int128(record.value)
            }
            blackHole(sums.count)
        }
        benchmark.stopMeasurement()
    }

    // The compactor's core: absorbing 1 M records into the delta table, fresh (growing from
    // empty, as after a restart) and steady (sized by the previous interval, as the compactor
    // does after each checkpoint).
    for (label, keys, reserved) in [("1M distinct keys, fresh", 1_000_000, 0), ("1M distinct keys, steady", 1_000_000, 1_000_000),
                                     ("1k hot keys", 1_000, 0)] {
        Benchmark("Compactor: absorb 1M records, \(label)",
                  configuration: .init(metrics: [.wallClock, .throughput, .cpuTotal, .peakMemoryResident],
                                       maxDuration: .seconds(10), maxIterations: 10)) { benchmark in
            let records = randomRecords(1_000_000, keys: keys)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                var table = DeltaTable(after: 0, expectedKeys: reserved)
                table.absorb(records, firstLSN: 1)
                blackHole(table.keyCount)
            }
            benchmark.stopMeasurement()
        }
    }
}

import Synchronization
