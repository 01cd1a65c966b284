import Foundation
import TallyIngest
import TallyLog

/// The strict rules of `IncrementParser`'s doc comment, checked independently: Foundation's
/// JSONSerialization says whether the bytes are one well-formed JSON object (UTF-8, string
/// contents, number grammar, nothing after it) and gives its members' values; a token-level
/// pass over the raw bytes adds what JSONSerialization forgives or hides: duplicate members,
/// escapes in names and in the key, and the exact spelling of the number.
public enum IncrementOracle {
    public struct Increment: Equatable, CustomStringConvertible {
        public var key: LogKey
        public var value: Int64
        public var description: String { "{key \(key.uuidString), value \(value)}" }
    }

    /// The increment `bytes` stand for under the strict rules, or nil when they refuse it.
    public static func increment(_ bytes: UnsafeRawBufferPointer) -> Increment? {
        // Only "key" (a UUID) and "value" (digits) are allowed, and neither names nor the key
        // may be escaped: an accepted body holds no backslash at all.
        guard !bytes.contains(UInt8(ascii: "\\")) else { return nil }
        guard let tokens = tokens(bytes), tokens.count == 9,
              tokens[0] == .punctuation(UInt8(ascii: "{")), tokens[2] == .punctuation(UInt8(ascii: ":")),
              tokens[4] == .punctuation(UInt8(ascii: ",")), tokens[6] == .punctuation(UInt8(ascii: ":")),
              tokens[8] == .punctuation(UInt8(ascii: "}")),
              case .string(let firstName) = tokens[1], case .string(let secondName) = tokens[5]
        else { return nil }
        let keyText: [UInt8]
        let valueText: [UInt8]
        let (key, value) = (Array("key".utf8), Array("value".utf8))
        switch (firstName, secondName) {
        case (key, value):
            guard case .string(let text) = tokens[3], case .literal(let number) = tokens[7] else { return nil }
            (keyText, valueText) = (text, number)
        case (value, key):
            guard case .string(let text) = tokens[7], case .literal(let number) = tokens[3] else { return nil }
            (keyText, valueText) = (text, number)
        default:
            return nil
        }

        // The key: 8-4-4-4-12 hex digits, either case.
        guard keyText.count == 36 else { return nil }
        for (position, byte) in keyText.enumerated() {
            if [8, 13, 18, 23].contains(position) {
                guard byte == UInt8(ascii: "-") else { return nil }
            } else {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
                        || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte) else { return nil }
            }
        }
        let keyString = String(decoding: keyText, as: UTF8.self)
        guard let uuid = UUID(uuidString: keyString) else { return nil }

        // The value: 1-9 then digits, at most Int64.max; no sign, fraction, exponent, leading zero.
        guard let leading = valueText.first, leading >= UInt8(ascii: "1"), leading <= UInt8(ascii: "9"),
              valueText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        let valueString = String(decoding: valueText, as: UTF8.self)
        guard let value = Int64(valueString), value >= 1 else { return nil }

        // And the whole must be one well-formed JSON object, as a JSON library reads it.
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: []) as? [String: Any],
              object.count == 2,
              let jsonKey = object["key"] as? String, jsonKey == keyString,
              let jsonValue = object["value"] as? NSNumber, jsonValue.stringValue == valueString
        else { return nil }
        return Increment(key: LogKey(uuid), value: value)
    }

    enum Token: Equatable {
        case punctuation(UInt8)
        /// A string's bytes between its quotes (there are no escapes to undo: see the caller).
        case string([UInt8])
        /// Anything else between delimiters: a number, true, false, null, or garbage.
        case literal([UInt8])
    }

    /// JSON's lexical structure, enough to count members and see their raw spelling. Nil for an
    /// unterminated string or more tokens than any accepted body has.
    static func tokens(_ bytes: UnsafeRawBufferPointer) -> [Token]? {
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        let punctuation: Set<UInt8> = Set("{}[]:,".utf8)
        var tokens: [Token] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if whitespace.contains(byte) {
                index += 1
            } else if punctuation.contains(byte) {
                tokens.append(.punctuation(byte))
                index += 1
            } else if byte == UInt8(ascii: "\"") {
                guard let close = bytes[(index + 1)...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                tokens.append(.string(Array(bytes[(index + 1)..<close])))
                index = close + 1
            } else {
                let start = index
                while index < bytes.count, !whitespace.contains(bytes[index]), !punctuation.contains(bytes[index]),
                      bytes[index] != UInt8(ascii: "\"") {
                    index += 1
                }
                tokens.append(.literal(Array(bytes[start..<index])))
            }
            if tokens.count > 9 { return nil }
        }
        return tokens
    }

    /// Holds `IncrementParser.parse` to the reference for one body: what it accepts, the
    /// reference must accept with the same key and value. With `bothWays`, also the converse
    /// (a refusal of what the reference accepts), which checks the reference itself.
    public static func check(_ bytes: UnsafeRawBufferPointer, bothWays: Bool) {
        switch IncrementParser.parse(bytes) {
        case .success(let body):
            guard let expected = increment(bytes) else {
                violation("IncrementParser accepted \(quoted(bytes)) as {key \(body.key.uuidString), value \(body.value)}, "
                          + "which the strict rules refuse")
            }
            require(body.key == expected.key && body.value == expected.value,
                    "IncrementParser read \(quoted(bytes)) as {key \(body.key.uuidString), value \(body.value)}, expected \(expected)")
        case .failure(let rejection):
            require(!rejection.message.isEmpty, "a refusal without a message")
            if bothWays, let expected = increment(bytes) {
                violation("IncrementParser refused \(quoted(bytes)) (\(rejection.message)), which the reference accepts as \(expected)")
            }
        }
    }

    /// The bytes as a Swift string literal would spell them, for messages.
    public static func quoted(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription + (bytes.count > 300 ? "…" : "")
    }
}

/// `BulkParser`'s rules on top: lines end with LF (the last may omit it), none may be empty or
/// blank, at most `maxIncrements` of them, each an increment under the strict rules; all or nothing.
public enum BulkOracle {
    public static func increments(_ bytes: UnsafeRawBufferPointer, maxIncrements: Int) -> [IncrementOracle.Increment]? {
        guard !bytes.isEmpty else { return nil }
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if bytes.last == UInt8(ascii: "\n") { lines.removeLast() }  // the terminator of the last line
        guard lines.count <= maxIncrements else { return nil }
        var result: [IncrementOracle.Increment] = []
        for line in lines {
            guard let increment = IncrementOracle.increment(UnsafeRawBufferPointer(rebasing: line)) else { return nil }
            result.append(increment)
        }
        return result
    }

    public static func check(_ bytes: UnsafeRawBufferPointer, maxIncrements: Int, bothWays: Bool) {
        switch BulkParser.parse(bytes, maxIncrements: maxIncrements) {
        case .success(let bodies):
            guard let expected = increments(bytes, maxIncrements: maxIncrements) else {
                violation("BulkParser (max \(maxIncrements)) accepted \(IncrementOracle.quoted(bytes)) as \(bodies.count) "
                          + "increments, which the strict rules refuse")
            }
            let got = bodies.map { IncrementOracle.Increment(key: $0.key, value: $0.value) }
            require(got == expected, "BulkParser read \(IncrementOracle.quoted(bytes)) as \(got), expected \(expected)")
        case .failure(let rejection):
            if case .line(let line, _) = rejection {
                require(line >= 1 && line <= bytes.count + 1, "refusal names line \(line)")
            }
            if bothWays, let expected = increments(bytes, maxIncrements: maxIncrements) {
                violation("BulkParser (max \(maxIncrements)) refused \(IncrementOracle.quoted(bytes)) (\(rejection)), "
                          + "which the reference accepts as \(expected)")
            }
        }
    }
}
