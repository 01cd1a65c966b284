import Foundation
@testable import TallyLog

/// A fresh directory under the system temp dir, removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "tally-log") {
        let template = NSTemporaryDirectory() + "\(label)-XXXXXX"
        var bytes = Array(template.utf8CString)
        let created = bytes.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        path = String(cString: created!)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }
}

let testNode = LogKey(high: 0x1111_2222_3333_4444, low: 0x5555_6666_7777_8888)

func configuration(_ directory: String, segmentSizeBytes: Int = 64 << 20) -> LogConfiguration {
    var configuration = LogConfiguration(directory: directory, nodeID: testNode)
    configuration.segmentSizeBytes = segmentSizeBytes
    return configuration
}

/// Deterministic records: key `seed % keys`, value `seed + 1`.
func records(_ count: Int, startingAt seed: Int = 0, keys: Int = 1_000) -> [LogRecord] {
    (seed..<(seed + count)).map { index in
        LogRecord(key: LogKey(high: UInt64(index % keys), low: 0xABCD),
                  value: Int64(index + 1), arrivalMillis: 1_700_000_000_000 + Int64(index))
    }
}

/// Every record in the log, read back through the reader.
func readAll(_ directory: String, from first: LSN? = nil) throws -> [(LSN, LogRecord)] {
    var result: [(LSN, LogRecord)] = []
    try LogReader(directory: directory).forEachRecord(from: first) { result.append(($0, $1)) }
    return result
}

func segmentFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory)
        .filter { SegmentName.firstLSN(of: $0) != nil }
        .sorted()
}

func fileBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Copies every segment of `source` into a new temporary directory.
func copyLog(_ source: String) throws -> TemporaryDirectory {
    let copy = TemporaryDirectory()
    for name in try segmentFiles(source) {
        try FileManager.default.copyItem(atPath: source + "/" + name, toPath: copy.file(name))
    }
    return copy
}

/// Opens, appends the batches one frame each (sequentially), closes.
func writeLog(_ directory: String, batches: [[LogRecord]], segmentSizeBytes: Int = 64 << 20) async throws {
    let log = try Log.open(configuration(directory, segmentSizeBytes: segmentSizeBytes))
    for batch in batches { try await log.append(batch) }
    await log.close()
}

/// The frames of one segment file.
func frames(of path: String) throws -> [FrameLocation] {
    try SegmentContents.read(path: path).scan.frames
}

/// The error `Log.open` refuses with, or nil if it opened (the log is then closed again).
func openFailure(_ config: LogConfiguration) async -> LogError? {
    let result = Result { () throws(LogError) in try Log.open(config) }
    switch result {
    case .success(let log):
        await log.close()
        return nil
    case .failure(let error):
        return error
    }
}

/// The problems of a `.corrupt` refusal, or an empty list for any other outcome.
func corruptionProblems(_ config: LogConfiguration) async -> [LogProblem] {
    if case .corrupt(_, let problems) = await openFailure(config) { return problems }
    return []
}
