#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ISO 8601 in UTC with milliseconds, as operators paste it into other tools.
func iso8601(millis: Int64) -> String {
    // Floor division without overflow: a record's time is whatever the segment holds.
    let (quotient, remainder) = millis.quotientAndRemainder(dividingBy: 1000)
    var seconds = time_t(remainder < 0 ? quotient - 1 : quotient)
    let milliseconds = Int(remainder < 0 ? remainder + 1000 : remainder)
    var parts = tm()
    guard gmtime_r(&seconds, &parts) != nil else { return "\(millis)ms" }
    func pad(_ value: Int32, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
        + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
}
