import TallyLog

/// The text form of a key: exactly 8-4-4-4-12 hex digits, either case.
public enum KeyText {
    public static func parse(_ text: some StringProtocol) -> LogKey? {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        for (position, byte) in text.utf8.enumerated() {
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            guard position < 36 else { return nil }
            if digits < 16 {
                high = high << 4 | UInt64(nibble)
            } else {
                low = low << 4 | UInt64(nibble)
            }
            digits += 1
        }
        return digits == 32 && text.utf8.count == 36 ? LogKey(high: high, low: low) : nil
    }
}
