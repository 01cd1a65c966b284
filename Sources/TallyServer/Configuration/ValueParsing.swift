/// Parsing of the human units the command line accepts.
public enum ValueParsing {
    /// `9s`, `500ms`, `1.5s`, `1m`, `2h`.
    public static func duration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, seconds) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number >= 0, number.isFinite else { return nil }
            return .milliseconds(Int64((number * seconds * 1000).rounded()))
        }
        return nil
    }

    /// `4096`, `4KiB`, `64MiB`, `8GiB` (powers of 1024) or `4KB`, `64MB`, `8GB` (powers of 1000).
    public static func byteCount(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
                                      ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000), ("B", 1)]
        for (suffix, multiplier) in units where text.hasSuffix(suffix) {
            guard let number = Int(text.dropLast(suffix.count)), number >= 0 else { return nil }
            let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        return Int(text).flatMap { $0 >= 0 ? $0 : nil }
    }
}
