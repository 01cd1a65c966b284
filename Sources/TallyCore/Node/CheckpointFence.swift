import Foundation
import Synchronization
import TallyLog

/// What this data directory remembers of its checkpoints, beside its log:
/// `<data dir>/checkpoint-fence`.
///
/// - `attempted`: the highest checkpoint LSN it has ever asked PostgreSQL to store, written
///   durably *before* each COMMIT. Every LSN PostgreSQL can hold for this node (short of
///   another process using the same id) is at most this.
/// - `confirmed`: the checkpoint LSN it last read back from PostgreSQL.
///
/// Two uses. At start, a log whose end reaches `attempted` proves that PostgreSQL's
/// checkpoint is not ahead of it, so the node may take writes before PostgreSQL answers;
/// any other log (emptied, restored from an older backup, cut past a checkpointed frame)
/// waits. And a stored LSN above `attempted` was put there by someone else, while one below
/// `confirmed` means PostgreSQL went back in time. The file lives beside `wal/`, not in it,
/// so that restoring `wal/` alone from a backup cannot restore the fence with it.
public final class CheckpointFence: Sendable {
    public static let fileName = "checkpoint-fence"

    public struct Marks: Sendable, Equatable {
        public var attempted: LSN
        public var confirmed: LSN

        public init(attempted: LSN, confirmed: LSN) {
            self.attempted = attempted
            self.confirmed = confirmed
        }
    }

    public let path: String
    private let current: Mutex<Marks?>

    /// Reads the fence of `dataDirectory`; a missing file means no marks yet. A file that
    /// exists but cannot be read or parsed throws: guessing could wave through a log that is
    /// behind its checkpoint.
    public init(dataDirectory: String) throws {
        path = dataDirectory + "/" + Self.fileName
        current = Mutex(try Self.load(path: path))
    }

    /// The marks as last written, nil when the directory has none yet.
    public var marks: Marks? { current.withLock { $0 } }

    /// Durably raises `attempted` to `lsn` (never lowers it). Call before the COMMIT that
    /// may store `lsn`. Blocking: call it from a thread that may block.
    public func recordAttempt(_ lsn: LSN) throws {
        try update { marks in marks.attempted = max(marks.attempted, lsn) }
    }

    /// Durably sets `confirmed` to `lsn`, the LSN just read back (it goes down only when
    /// PostgreSQL did). Blocking.
    public func recordConfirmed(_ lsn: LSN) throws {
        try update { marks in
            marks.confirmed = lsn
            marks.attempted = max(marks.attempted, lsn)
        }
    }

    /// Durably starts over at zero: for an identity drawn just now, which has checkpointed
    /// nothing whatever an older fence in the directory says. Blocking.
    public func reset() throws {
        try update { marks in marks = Marks(attempted: 0, confirmed: 0) }
    }

    private func update(_ change: (inout Marks) -> Void) throws {
        var marks = current.withLock { $0 } ?? Marks(attempted: 0, confirmed: 0)
        let before = marks
        change(&marks)
        if marks == before && current.withLock({ $0 }) != nil { return }
        try DurableFile.overwrite(Self.encode(marks), at: path)
        current.withLock { $0 = marks }
    }

    /// The file's size: below one 512-byte sector, like PostgreSQL's `pg_control`, so that
    /// an overwrite in place is one sector write. Overwriting in place needs no new block,
    /// so a checkpoint still runs on a full disk and frees space by deleting segments; a
    /// torn overwrite is caught by the checksum line.
    static let sizeBytes = 512

    static func encode(_ marks: Marks) -> [UInt8] {
        var text = """
            # Tally: checkpoint LSNs of this data directory (see docs/design.md, "Node position").
            # attempted: the highest LSN ever sent to PostgreSQL; confirmed: the LSN last read back.
            attempted \(marks.attempted)
            confirmed \(marks.confirmed)

            """
        text += "check \(String(CRC32C.checksum(Array(text.utf8)), radix: 16))\n"
        var bytes = Array(text.utf8)
        precondition(bytes.count < sizeBytes, "the fence must fit one sector")
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: sizeBytes - 1 - bytes.count) + [UInt8(ascii: "\n")]
        return bytes
    }

    private static func load(path: String) throws -> Marks? {
        let bytes: [UInt8]
        switch DurableFile.read(path) {
        case .success(let contents): bytes = contents
        case .failure(let error) where error.code == .ENOENT: return nil
        case .failure(let error): throw CheckpointFenceError(path: path, reason: error.localizedDescription)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CheckpointFenceError(path: path, reason: "not UTF-8 text")
        }
        // Files written before the checksum line existed have none; every overwrite adds it.
        if let check = text.range(of: "\ncheck ") {
            let covered = Array(text[..<check.lowerBound].utf8) + [UInt8(ascii: "\n")]
            let stated = text[check.upperBound...].prefix { $0.isHexDigit }
            guard let value = UInt32(stated, radix: 16), value == CRC32C.checksum(covered) else {
                throw CheckpointFenceError(path: path, reason: "its checksum does not match (a torn or damaged write)")
            }
        }
        var values: [String: LSN] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("check ")
            && !line.allSatisfy(\.isWhitespace) {
            let fields = line.split(separator: " ")
            guard fields.count == 2, let value = LSN(fields[1]), values[String(fields[0])] == nil else {
                throw CheckpointFenceError(path: path, reason: "unexpected line \"\(line.prefix(80))\"")
            }
            values[String(fields[0])] = value
        }
        guard let attempted = values["attempted"], let confirmed = values["confirmed"], values.count == 2,
              confirmed <= attempted else {
            throw CheckpointFenceError(path: path, reason: "needs exactly an attempted and a confirmed LSN, confirmed ≤ attempted")
        }
        return Marks(attempted: attempted, confirmed: confirmed)
    }
}

public struct CheckpointFenceError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String {
        "cannot read \(path): \(reason). Deleting it is safe: the node then checks its log against "
            + "PostgreSQL's checkpoint before it takes writes"
    }
}
