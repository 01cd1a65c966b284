import ArgumentParser
import TallyLog

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every segment and frame of a log.",
        discussion: """
            Reads every segment in or below the directory (give the daemon's --data-dir), \
            checks headers, checksums, lz4 payloads and LSN continuity, and names each problem \
            with its segment, offset and LSN. Read-only; works while the daemon runs (the \
            frame being written at that instant may then show as a torn tail).

            Exit status: 0 when the log is sound; 1 when the only problem is a torn tail at the \
            end of the last segment (an interrupted write, which `tally serve` cuts off at \
            start); 2 when there is corruption (serve refuses to start: see `tally recover`).
            """
    )

    @Argument(help: "The data directory (or the directory of the segments).")
    var path: String

    mutating func run() throws {
        guard let directory = LogLocation.segmentDirectory(for: path) else {
            throw ToolError("no log segments (*\(SegmentName.suffix)) found in or below \(path)")
        }
        var inspection = try LogInspection.inspect(directory: directory)
        inspection.problems += try payloadProblems(inspection)

        var records = 0
        for segment in inspection.segments {
            guard let scan = segment.scan else { continue }
            records += scan.recordCount
            let lastLSN = scan.nextLSN - 1
            let range = scan.frames.isEmpty ? "no frames" : "LSN \(scan.header.firstLSN)-\(lastLSN)"
            print("\(segment.fileName)  \(scan.frames.count) frames  \(scan.recordCount) records  \(range)")
        }
        for name in inspection.temporaryFiles {
            print("note: \(name) is an interrupted segment creation; the daemon removes it at start")
        }
        for problem in inspection.problems {
            print(problem)
        }
        let corrupt = inspection.problems.filter { $0.kind == .corruption }.count
        let torn = inspection.problems.count - corrupt
        if inspection.problems.isEmpty {
            print("log is sound: \(inspection.segments.count) segments, \(records) records, next LSN \(inspection.nextLSN)")
            return
        }
        print("log has problems: \(corrupt) corruption, \(torn) torn tail")
        throw ExitCode(corrupt > 0 ? 2 : 1)
    }

    /// Decodes every valid frame, request section included: a checksum that holds over an
    /// lz4 block or a request section that does not decode would be a writer bug, and verify
    /// should catch that too.
    private func payloadProblems(_ inspection: LogInspection) throws -> [LogProblem] {
        var problems: [LogProblem] = []
        var decoder = FrameDecoder()
        for segment in inspection.segments where segment.scan != nil {
            let contents = try SegmentContents.read(path: segment.path)
            for frame in contents.scan.frames {
                do {
                    try contents.forEachEntry(in: frame, decoder: &decoder) { _ in }
                } catch {
                    problems.append(LogProblem(kind: .corruption, segment: segment.fileName, offset: frame.offset,
                                               lsn: frame.header.firstLSN, message: String(describing: error)))
                }
            }
        }
        return problems
    }
}
