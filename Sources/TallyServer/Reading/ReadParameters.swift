import Hummingbird
import HummingbirdCore
import TallyCore
import TallyIngest
import TallyLog

/// Strict parsing of the read routes' path and query parameters. Every refusal is a 400
/// that names the parameter and says what was expected; a parameter that is unknown or
/// given twice is refused too, since it is most likely a typo the client should hear about.
enum ReadParameters {
    /// The query parameters of `uri`, each at most once and all among `allowed`.
    static func query(_ uri: URI, allowed: Set<String>) -> Result<[String: String], Answer> {
        var values: [String: String] = [:]
        for (name, value) in uri.queryParameters {
            let name = String(name)
            guard allowed.contains(name) else {
                let known = allowed.sorted().joined(separator: ", ")
                return .failure(.error(.badRequest, "unknown query parameter \"\(name)\" (this route takes \(known))"))
            }
            guard values[name] == nil else {
                return .failure(.error(.badRequest, "query parameter \"\(name)\" is given more than once"))
            }
            values[name] = String(value)
        }
        return .success(values)
    }

    /// A key in the 8-4-4-4-12 form, either case.
    static func key(_ text: String?, name: String = "key") -> Result<LogKey, Answer> {
        guard let text, let key = KeyText.parse(text) else {
            return .failure(.error(.badRequest, "\"\(name)\" must be a UUID in the form 8-4-4-4-12 hex digits"))
        }
        return .success(key)
    }

    /// A required day, `YYYY-MM-DD`.
    static func day(_ text: String?, name: String) -> Result<Day, Answer> {
        guard let text else { return .failure(.error(.badRequest, "query parameter \"\(name)\" is required (YYYY-MM-DD)")) }
        guard let day = Day(iso: text) else {
            return .failure(.error(.badRequest, "\"\(name)\" must be a date YYYY-MM-DD between 0001-01-01 and 9999-12-31, got \"\(text.prefix(40))\""))
        }
        return .success(day)
    }

    /// A whole number in `range`; `fallback` when absent (nil: required).
    static func integer(_ text: String?, name: String, in range: ClosedRange<Int>, fallback: Int? = nil) -> Result<Int, Answer> {
        guard let text else {
            if let fallback { return .success(fallback) }
            return .failure(.error(.badRequest, "query parameter \"\(name)\" is required"))
        }
        guard text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int(text), range.contains(value) else {
            return .failure(.error(.badRequest, "\"\(name)\" must be a whole number from \(range.lowerBound) to \(range.upperBound)"))
        }
        return .success(value)
    }

    /// `from`…`to` inclusive, at most `maxDays` long.
    static func range(from: String?, to: String?, maxDays: Int) -> Result<ClosedRange<Day>, Answer> {
        let first: Day
        let last: Day
        switch day(from, name: "from") {
        case .success(let day): first = day
        case .failure(let answer): return .failure(answer)
        }
        switch day(to, name: "to") {
        case .success(let day): last = day
        case .failure(let answer): return .failure(answer)
        }
        guard first <= last else { return .failure(.error(.badRequest, "\"from\" must not be after \"to\"")) }
        guard Int(last.number) - Int(first.number) < maxDays else {
            return .failure(.error(.badRequest, "at most \(maxDays) days per request (from \(first) to \(last) is more)"))
        }
        return .success(first...last)
    }

    /// The days of a year, of a month, or one day: `year`, `year&month`, `year&month&day`.
    static func period(year: String?, month: String?, day: String?) -> Result<ClosedRange<Day>, Answer> {
        let yearValue: Int
        switch integer(year, name: "year", in: 1...9999) {
        case .success(let value): yearValue = value
        case .failure(let answer): return .failure(answer)
        }
        guard let month else {
            if day != nil { return .failure(.error(.badRequest, "\"day\" needs \"month\"")) }
            return .success(Day(year: yearValue, month: 1, day: 1)!...Day(year: yearValue, month: 12, day: 31)!)
        }
        let monthValue: Int
        switch integer(month, name: "month", in: 1...12) {
        case .success(let value): monthValue = value
        case .failure(let answer): return .failure(answer)
        }
        let daysInMonth = Day.daysIn(month: monthValue, year: yearValue)
        guard let day else {
            return .success(Day(year: yearValue, month: monthValue, day: 1)!...Day(year: yearValue, month: monthValue, day: daysInMonth)!)
        }
        switch integer(day, name: "day", in: 1...daysInMonth) {
        case .success(let value):
            let only = Day(year: yearValue, month: monthValue, day: value)!
            return .success(only...only)
        case .failure(let answer):
            return .failure(answer)
        }
    }
}
