import ArgumentParser
import Foundation
import TallyLog

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print the frames and records of log segments.",
        discussion: """
            Reads a segment file, or every segment of the log in or below a directory (give \
            the daemon's --data-dir). Read-only: it takes no lock and works while the daemon \
            runs. A damaged frame is reported and the dump goes on with the next valid frame.

            Text output: one line per frame (offset, LSN range, records, stored and raw bytes, \
            compression, checksum) and one per record: segment, offset, LSN, time, key, value. \
            With --json: one JSON object per line, "type" being "segment", "frame", "record" \
            or "damage"; records carry segment, offset, lsn, time, key and value.
            """
    )

    @Argument(help: "A segment file (*.wal) or a data directory.")
    var path: String

    @Flag(help: "Print JSON lines instead of text.")
    var json = false

    @Option(name: .customLong("from-lsn"), help: "Only records with an LSN at or above this.")
    var fromLSN: UInt64 = 1

    @Option(help: "Only records of this key (a UUID).")
    var key: String?

    @Flag(help: "Print totals only: segments, frames, records, distinct keys, raw and stored bytes.")
    var stats = false

    mutating func run() throws {
        var keyFilter: LogKey?
        if let key {
            guard let uuid = UUID(uuidString: key) else { throw ValidationError("--key must be a UUID, got \(key)") }
            keyFilter = LogKey(uuid)
        }
        var printer = DumpPrinter(json: json, statsOnly: stats, fromLSN: fromLSN, key: keyFilter)
        for path in try LogTarget.segmentPaths(for: path) {
            try printer.dump(SegmentContents.read(path: path))
        }
        printer.finish()
        if printer.damageCount > 0 { throw ExitCode(1) }
    }
}

/// Formats what `tally dump` prints, and keeps the totals for `--stats`.
struct DumpPrinter {
    let json: Bool
    let statsOnly: Bool
    let fromLSN: LSN
    let key: LogKey?

    private var decoder = FrameDecoder()
    private var segments = 0
    private var frames = 0
    private var records = 0
    private var rawBytes = 0
    private var storedBytes = 0
    private var distinctKeys = Set<LogKey>()
    private var requests = 0
    private(set) var damageCount = 0

    init(json: Bool, statsOnly: Bool, fromLSN: LSN, key: LogKey?) {
        self.json = json
        self.statsOnly = statsOnly
        self.fromLSN = fromLSN
        self.key = key
    }

    private var showsFrames: Bool { !statsOnly && key == nil }

    mutating func dump(_ segment: SegmentContents) throws {
        segments += 1
        let name = segment.fileName
        switch segment.header {
        case .success(let header):
            emitSegment(name, header: header, sizeBytes: segment.bytes.count)
        case .failure(let error):
            emitDamage(name, offset: 0, lsn: segment.scan.header.firstLSN, sizeBytes: SegmentHeader.sizeBytes,
                       reason: error.description)
        }
        var damage = segment.scan.damage[...]
        for frame in segment.scan.frames {
            while let next = damage.first, next.offset <= frame.offset {
                emitDamage(name, offset: next.offset, lsn: next.expectedLSN, sizeBytes: next.sizeBytes, reason: next.reason)
                damage = damage.dropFirst()
            }
            try dumpFrame(frame, of: segment)
        }
        for next in damage {
            emitDamage(name, offset: next.offset, lsn: next.expectedLSN, sizeBytes: next.sizeBytes, reason: next.reason)
        }
    }

    private mutating func dumpFrame(_ frame: FrameLocation, of segment: SegmentContents) throws {
        let header = frame.header
        frames += 1
        rawBytes += Int(header.rawLength)
        storedBytes += Int(header.storedLength)
        if showsFrames && header.lastLSN >= fromLSN {
            let ratio = Double(header.rawLength) / Double(header.storedLength)
            if json {
                print(#"{"type":"frame","segment":"\#(segment.fileName)","offset":\#(frame.offset),"first_lsn":\#(header.firstLSN),"last_lsn":\#(header.lastLSN),"records":\#(header.recordCount),"stored_bytes":\#(header.storedLength),"raw_bytes":\#(header.rawLength),"compressed":\#(header.isCompressed),"checksum":"ok"}"#)
            } else {
                print("frame  \(segment.fileName) offset \(frame.offset)  LSN \(header.firstLSN)-\(header.lastLSN)  "
                    + "\(header.recordCount) records  \(header.storedLength)/\(header.rawLength) bytes "
                    + "\(header.isCompressed ? "lz4" : "raw") ratio \(format(ratio))  checksum ok")
            }
        }
        var decoder = self.decoder
        defer { self.decoder = decoder }
        do {
            try segment.forEachEntry(in: frame, decoder: &decoder) { entry in
                switch entry {
                case .request(let request):
                    requests += 1
                    guard showsFrames, request.lastLSN >= fromLSN else { return }
                    emitRequest(segment.fileName, offset: frame.offset, request: request)
                case .record(let lsn, let record):
                    records += 1
                    if statsOnly { distinctKeys.insert(record.key) }
                    guard !statsOnly, lsn >= fromLSN, key == nil || key == record.key else { return }
                    emitRecord(segment.fileName, offset: frame.offset, lsn: lsn, record: record)
                }
            }
        } catch {
            emitDamage(segment.fileName, offset: frame.offset, lsn: header.firstLSN,
                       sizeBytes: header.frameSizeBytes, reason: String(describing: error))
        }
    }

    private func emitSegment(_ name: String, header: SegmentHeader, sizeBytes: Int) {
        guard showsFrames else { return }
        if json {
            print(#"{"type":"segment","segment":"\#(name)","node":"\#(header.nodeID.uuidString)","first_lsn":\#(header.firstLSN),"version":\#(header.version),"size_bytes":\#(sizeBytes)}"#)
        } else {
            print("segment \(name)  node \(header.nodeID.uuidString)  first LSN \(header.firstLSN)  "
                + "format v\(header.version)  \(sizeBytes) bytes")
        }
    }

    /// A request entry (format v2): the id a client sent with these records, for retries.
    private func emitRequest(_ segment: String, offset: Int, request: RequestEntry) {
        let digest = String(request.tag.digest, radix: 16)
        if json {
            let id = request.tag.idString.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            print(#"{"type":"request","segment":"\#(segment)","offset":\#(offset),"id":"\#(id)","first_lsn":\#(request.firstLSN),"last_lsn":\#(request.lastLSN),"records":\#(request.count),"digest":"\#(digest)"}"#)
        } else {
            print("request \(segment) offset \(offset)  LSN \(request.firstLSN)-\(request.lastLSN)  "
                + "\(request.count) records  id \(request.tag.idString)  digest \(digest)")
        }
    }

    private func emitRecord(_ segment: String, offset: Int, lsn: LSN, record: LogRecord) {
        let time = iso8601(millis: record.arrivalMillis)
        if json {
            print(#"{"type":"record","segment":"\#(segment)","offset":\#(offset),"lsn":\#(lsn),"time":"\#(time)","key":"\#(record.key.uuidString)","value":\#(record.value)}"#)
        } else {
            print("\(segment)  \(offset)  \(lsn)  \(time)  \(record.key.uuidString)  \(record.value)")
        }
    }

    private mutating func emitDamage(_ segment: String, offset: Int, lsn: LSN, sizeBytes: Int, reason: String) {
        damageCount += 1
        let escaped = reason.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        if json {
            print(#"{"type":"damage","segment":"\#(segment)","offset":\#(offset),"expected_lsn":\#(lsn),"size_bytes":\#(sizeBytes),"reason":"\#(escaped)"}"#)
        } else {
            print("DAMAGE \(segment) offset \(offset) (expected LSN \(lsn)): \(reason); \(sizeBytes) bytes skipped")
        }
    }

    func finish() {
        guard statsOnly else { return }
        let ratio = storedBytes > 0 ? Double(rawBytes) / Double(storedBytes) : 1
        if json {
            print(#"{"type":"stats","segments":\#(segments),"frames":\#(frames),"records":\#(records),"requests":\#(requests),"distinct_keys":\#(distinctKeys.count),"raw_bytes":\#(rawBytes),"stored_bytes":\#(storedBytes),"compression_ratio":\#(format(ratio)),"damaged_regions":\#(damageCount)}"#)
        } else {
            print("""
                segments        \(segments)
                frames          \(frames)
                records         \(records)
                requests        \(requests)
                distinct keys   \(distinctKeys.count)
                raw bytes       \(rawBytes)
                stored bytes    \(storedBytes)
                compression     \(format(ratio))x
                records/frame   \(frames > 0 ? format(Double(records) / Double(frames)) : "0")
                damaged regions \(damageCount)
                """)
        }
    }

    private func format(_ value: Double) -> String {
        String(format: "%.2f", value)
    }
}
