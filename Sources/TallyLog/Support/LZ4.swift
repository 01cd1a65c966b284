import CLZ4

/// lz4's block API, the frame payload codec.
///
/// A frame is one group-commit batch of 32-byte records; lz4 shrinks it 1.5–3× at about
/// 1 GB/s, so the same disk budget holds more increments through a PostgreSQL outage and
/// replay reads less. The frame header keeps the raw length, so decompression needs no
/// framing of its own and can check the result exactly.
enum LZ4 {
    /// Largest output `compress` may produce for `count` input bytes.
    static func compressBound(_ count: Int) -> Int {
        Int(LZ4_compressBound(Int32(count)))
    }

    /// Compresses `source` into `destination`, returning the compressed length, or nil when
    /// the result would not be smaller than the input (the frame is then stored raw).
    static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        precondition(source.count <= Int(Int32.max), "lz4 block larger than 2 GiB")
        let written = LZ4_compress_default(
            source.baseAddress?.assumingMemoryBound(to: CChar.self),
            destination.baseAddress?.assumingMemoryBound(to: CChar.self),
            Int32(source.count),
            Int32(min(destination.count, source.count - 1))
        )
        return written > 0 ? Int(written) : nil
    }

    /// Decompresses `source` into `destination`, which must be exactly the raw length.
    /// Returns false on malformed input or a length other than `destination.count`.
    static func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let produced = LZ4_decompress_safe(
            source.baseAddress?.assumingMemoryBound(to: CChar.self),
            destination.baseAddress?.assumingMemoryBound(to: CChar.self),
            Int32(source.count),
            Int32(destination.count)
        )
        return produced == Int32(destination.count)
    }
}
