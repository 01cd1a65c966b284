/// An id an appender attaches to the records of one append, so that a retry of the same
/// request can be recognised: the log keeps it with the records (format v2's request
/// section), so it survives a crash and a replay sees it again.
///
/// The log gives the id no meaning: it stores it, with a digest of what the request carried
/// (a retry with the same id but other increments is not the same request).
public struct RequestTag: Hashable, Sendable, CustomStringConvertible {
    /// Ids are 1…64 bytes of printable ASCII (0x20…0x7E).
    public static let maxIDBytes = 64

    public let id: [UInt8]
    public let digest: UInt64

    /// Nil unless `id` is 1…64 printable ASCII characters.
    public init?(id: some StringProtocol, digest: UInt64) {
        self.init(idBytes: Array(id.utf8), digest: digest)
    }

    public init?(idBytes: [UInt8], digest: UInt64) {
        guard Self.isValid(idBytes) else { return nil }
        self.id = idBytes
        self.digest = digest
    }

    public static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        !bytes.isEmpty && bytes.count <= maxIDBytes && bytes.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }

    public var idString: String { String(decoding: id, as: UTF8.self) }
    public var description: String { idString }
}

/// A request as the log holds it: its tag and the LSNs of its records.
public struct RequestEntry: Hashable, Sendable {
    public var tag: RequestTag
    public var firstLSN: LSN
    public var count: Int

    public init(tag: RequestTag, firstLSN: LSN, count: Int) {
        self.tag = tag
        self.firstLSN = firstLSN
        self.count = count
    }

    public var lastLSN: LSN { firstLSN + LSN(count) - 1 }
}

/// One append as the writer takes it: records that land in one frame, and an optional tag.
public struct Append: Sendable {
    public var records: [LogRecord]
    public var tag: RequestTag?

    public init(records: [LogRecord], tag: RequestTag? = nil) {
        self.records = records
        self.tag = tag
    }
}

/// What a reader finds in the log, in LSN order: a request entry comes right before the
/// first record it covers.
public enum LogEntry: Sendable {
    case request(RequestEntry)
    case record(LSN, LogRecord)
}
