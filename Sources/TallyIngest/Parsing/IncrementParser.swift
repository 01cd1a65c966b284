import TallyLog

/// A validated `POST /increment` body.
public struct IncrementBody: Equatable, Sendable {
    public var key: LogKey
    public var value: Int64
}

/// Why a body was refused, in words a client can act on. Always names the field when the
/// problem is in one.
public struct IncrementRejection: Error, Equatable, Sendable {
    public var message: String
}

/// The strict parser for `POST /increment` bodies.
///
/// Accepted grammar (JSON, RFC 8259, restricted):
/// ```
/// body   = ws "{" ws member ws "," ws member ws "}" ws
/// member = "\"key\"" ws ":" ws uuid-string  |  "\"value\"" ws ":" ws integer
/// uuid-string = "\"" 8hex "-" 4hex "-" 4hex "-" 4hex "-" 12hex "\""   (hex in either case)
/// integer = 1-9 *digit                                                 (1 … 9223372036854775807)
/// ws = *( space / tab / LF / CR )
/// ```
/// Exactly the two members, in either order; nothing else. Member names and the key are
/// matched byte for byte: a backslash escape in them is refused (a UUID never needs one,
/// and accepting `"\u006bey"` would make two spellings of one field). Numbers with a sign,
/// fraction, exponent or leading zero are refused, and out-of-range literals are refused
/// without overflowing. It is a hand-written scanner rather than JSONDecoder because the
/// Foundation decoder accepts duplicate members, fractions and trailing bytes, and costs
/// more than the rest of the request.
public enum IncrementParser {
    public static let usage = #"expected {"key": "<uuid>", "value": <integer 1…9223372036854775807>}"#

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<IncrementBody, IncrementRejection> {
        var scanner = Scanner(bytes: bytes)
        do {
            return .success(try scanner.body())
        } catch {
            return .failure(error)
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Result<IncrementBody, IncrementRejection> {
        bytes.withUnsafeBytes { parse($0) }
    }
}

private struct Scanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    private func reject(_ message: String) -> IncrementRejection {
        IncrementRejection(message: message)
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    mutating func body() throws(IncrementRejection) -> IncrementBody {
        skipWhitespace()
        guard let first = current else { throw reject("the body is empty; \(IncrementParser.usage)") }
        guard first == UInt8(ascii: "{") else {
            throw reject("the body must be a JSON object; \(IncrementParser.usage)")
        }
        index += 1
        var key: LogKey?
        var value: Int64?
        skipWhitespace()
        if current == UInt8(ascii: "}") { throw reject("missing field \"key\"; \(IncrementParser.usage)") }
        // At most three passes: a third member is always a duplicate or an unknown field.
        for _ in 0..<3 {
            skipWhitespace()
            let name = try memberName()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw reject("malformed JSON: expected ':' after \"\(name)\"") }
            index += 1
            skipWhitespace()
            switch name {
            case "key":
                guard key == nil else { throw reject("duplicate field \"key\"") }
                key = try uuid()
            case "value":
                guard value == nil else { throw reject("duplicate field \"value\"") }
                value = try integer()
            default:
                throw reject("unknown field \(name.isEmpty ? "\"\"" : "\"\(name)\""); \(IncrementParser.usage)")
            }
            skipWhitespace()
            guard let separator = current else { throw reject("malformed JSON: the object is not closed") }
            index += 1
            if separator == UInt8(ascii: "}") { break }
            guard separator == UInt8(ascii: ",") else { throw reject("malformed JSON: expected ',' or '}' after a field") }
        }
        guard bytes[index - 1] == UInt8(ascii: "}") else { throw reject("malformed JSON: the object is not closed") }
        skipWhitespace()
        guard index == bytes.count else { throw reject("unexpected data after the JSON object") }
        guard let key else { throw reject("missing field \"key\"; \(IncrementParser.usage)") }
        guard let value else { throw reject("missing field \"value\"; \(IncrementParser.usage)") }
        return IncrementBody(key: key, value: value)
    }

    /// A member name: a plain string without escapes. Returned for messages, so it is cut
    /// to 32 printable ASCII characters (never echoing arbitrary bytes back).
    private mutating func memberName() throws(IncrementRejection) -> String {
        guard current == UInt8(ascii: "\"") else { throw reject("malformed JSON: expected a field name in double quotes") }
        index += 1
        let start = index
        while let byte = current, byte != UInt8(ascii: "\"") {
            if byte == UInt8(ascii: "\\") { throw reject("field names must not contain escapes") }
            if byte < 0x20 { throw reject("malformed JSON: control character in a field name") }
            index += 1
        }
        guard current == UInt8(ascii: "\"") else { throw reject("malformed JSON: unterminated field name") }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        index += 1
        if raw.count <= 32 && raw.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") }) {
            return String(decoding: raw, as: UTF8.self)
        }
        return "(a long or non-ASCII name)"
    }

    private mutating func uuid() throws(IncrementRejection) -> LogKey {
        guard current == UInt8(ascii: "\"") else {
            throw reject("\"key\" must be a string holding a UUID, got \(describeValue())")
        }
        index += 1
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        var position = 0
        while let byte = current, byte != UInt8(ascii: "\"") {
            if byte == UInt8(ascii: "\\") || byte < 0x20 {
                throw reject("\"key\" must be a UUID in the form 8-4-4-4-12 hex digits")
            }
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { throw reject("\"key\" must be a UUID in the form 8-4-4-4-12 hex digits") }
            } else {
                guard let nibble = Self.hexValue(byte), position < 36 else {
                    throw reject("\"key\" must be a UUID in the form 8-4-4-4-12 hex digits")
                }
                if digits < 16 { high = high << 4 | UInt64(nibble) } else { low = low << 4 | UInt64(nibble) }
                digits += 1
            }
            position += 1
            index += 1
        }
        guard current == UInt8(ascii: "\"") else { throw reject("malformed JSON: unterminated string for \"key\"") }
        index += 1
        guard position == 36, digits == 32 else { throw reject("\"key\" must be a UUID in the form 8-4-4-4-12 hex digits") }
        return LogKey(high: high, low: low)
    }

    private mutating func integer() throws(IncrementRejection) -> Int64 {
        let range = "\"value\" must be an integer from 1 to 9223372036854775807"
        guard let first = current else { throw reject("malformed JSON: missing the value of \"value\"") }
        if first == UInt8(ascii: "-") { throw reject("\(range), got a negative number") }
        guard first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") else {
            throw reject("\(range), got \(describeValue())")
        }
        if first == UInt8(ascii: "0"), index + 1 < bytes.count, bytes[index + 1] >= UInt8(ascii: "0"), bytes[index + 1] <= UInt8(ascii: "9") {
            throw reject("\"value\" must not have leading zeros")
        }
        var value: Int64 = 0
        var overflow = false
        while let byte = current, byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
            if !overflow {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
                overflow = o1 || o2
                value = sum
            }
            index += 1
        }
        if let next = current, next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            throw reject("\"value\" must be an integer (no fraction or exponent)")
        }
        if overflow { throw reject("\(range), got a larger number") }
        if value == 0 { throw reject("\(range), got 0") }
        return value
    }

    /// Names the JSON type at the cursor for a "wrong type" message.
    private func describeValue() -> String {
        switch current {
        case UInt8(ascii: "\"")?: return "a string"
        case UInt8(ascii: "{")?: return "an object"
        case UInt8(ascii: "[")?: return "an array"
        case UInt8(ascii: "t")?, UInt8(ascii: "f")?: return "a boolean"
        case UInt8(ascii: "n")?: return "null"
        case let byte? where byte == UInt8(ascii: "-") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")): return "a number"
        case nil: return "nothing"
        default: return "malformed JSON"
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
