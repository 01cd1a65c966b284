/// A non-negative whole number of any size, as decimal digits: a total as PostgreSQL's
/// `numeric` holds it. Totals outgrow Int64 (two increments of Int64.max) and could in
/// principle outgrow Int128, so they travel as text and only ever get added to.
public struct DecimalTotal: Sendable, Equatable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// Decimal digits without leading zeros ("0" for zero).
    public private(set) var digits: String

    public static let zero = DecimalTotal(integerLiteral: 0)

    public init(integerLiteral value: Int) {
        precondition(value >= 0, "totals are never negative")
        digits = String(value)
    }

    public init(_ value: Int128) {
        precondition(value >= 0, "totals are never negative")
        digits = String(value)
    }

    /// Parses PostgreSQL's text for a whole non-negative `numeric` ("123", also "123.000").
    public init?(decimal text: some StringProtocol) {
        var whole = Substring(text)
        if let point = whole.firstIndex(of: ".") {
            guard whole[whole.index(after: point)...].allSatisfy({ $0 == "0" }) else { return nil }
            whole = whole[..<point]
        }
        guard !whole.isEmpty, whole.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return nil
        }
        let trimmed = whole.drop { $0 == "0" }
        digits = trimmed.isEmpty ? "0" : String(trimmed)
    }

    public var description: String { digits }

    public var isZero: Bool { digits == "0" }

    /// `self + other`, digit by digit.
    public func adding(_ other: DecimalTotal) -> DecimalTotal {
        let left = Array(digits.utf8.reversed())
        let right = Array(other.digits.utf8.reversed())
        var sum: [UInt8] = []
        sum.reserveCapacity(max(left.count, right.count) + 1)
        var carry: UInt8 = 0
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? left[index] - UInt8(ascii: "0") : 0
            let b = index < right.count ? right[index] - UInt8(ascii: "0") : 0
            let digit = a + b + carry
            sum.append(digit % 10 + UInt8(ascii: "0"))
            carry = digit / 10
        }
        if carry > 0 { sum.append(carry + UInt8(ascii: "0")) }
        var result = DecimalTotal.zero
        result.digits = String(decoding: sum.reversed(), as: UTF8.self)
        return result
    }

    public func adding(_ value: Int128) -> DecimalTotal {
        adding(DecimalTotal(value))
    }
}
