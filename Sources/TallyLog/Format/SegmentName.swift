/// Segment files are named by their first LSN, zero-padded to 20 digits, so `ls` lists them
/// in log order. A segment being created carries `.tmp` until it is complete and synced.
public enum SegmentName {
    public static let suffix = ".wal"
    public static let temporarySuffix = ".wal.tmp"
    /// Bytes cut from a torn tail are kept beside the log under this suffix.
    public static let brokenSuffix = ".broken"

    public static func fileName(firstLSN: LSN) -> String {
        let digits = String(firstLSN)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The first LSN encoded in a segment's file name, or nil if it is not a segment name.
    public static func firstLSN(of fileName: String) -> LSN? {
        guard fileName.hasSuffix(suffix), fileName.utf8.count == 20 + suffix.utf8.count else { return nil }
        let digits = fileName.utf8.prefix(20)
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return LSN(String(decoding: digits, as: UTF8.self))
    }
}
