import TallyLog

/// The strict parser for `POST /increments` bodies: newline-delimited JSON (NDJSON), one
/// increment object per line under exactly the rules of `IncrementParser`.
///
/// Lines end with `\n` (a `\r` before it is JSON whitespace, so CRLF works); the last line
/// may omit it. An empty line anywhere is refused, as is an empty body. The first bad line
/// is named by its 1-based number, and nothing of the body is taken: a bulk request is all
/// or nothing.
public enum BulkParser {
    public enum Rejection: Error, Equatable, Sendable, CustomStringConvertible {
        /// Line `line` (1-based) is not a valid increment.
        case line(Int, String)
        case empty
        case tooManyIncrements(limit: Int)

        public var description: String {
            switch self {
            case .line(let line, let message): "line \(line): \(message)"
            case .empty: "the body holds no increments (one JSON object per line)"
            case .tooManyIncrements(let limit): "the body holds more than \(limit) increments"
            }
        }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxIncrements: Int) -> Result<[IncrementBody], Rejection> {
        precondition(maxIncrements >= 1, "a bulk body may hold at least one increment")
        guard !bytes.isEmpty else { return .failure(.empty) }
        var increments: [IncrementBody] = []
        increments.reserveCapacity(min(maxIncrements, bytes.count / 60 + 1))
        var start = 0
        var line = 0
        while start < bytes.count {
            line += 1
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            guard increments.count < maxIncrements else { return .failure(.tooManyIncrements(limit: maxIncrements)) }
            let content = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if content.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                return .failure(.line(line, "the line is empty; \(IncrementParser.usage)"))
            }
            switch IncrementParser.parse(content) {
            case .success(let increment): increments.append(increment)
            case .failure(let rejection): return .failure(.line(line, rejection.message))
            }
            start = end + 1
        }
        return .success(increments)
    }
}
