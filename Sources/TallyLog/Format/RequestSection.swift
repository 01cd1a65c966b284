/// The request section of a format-v2 frame: after the frame's records, one entry per
/// tagged append, in record order.
///
/// ```
/// u16 entry count (≥ 1)
/// per entry: u32 first record index │ u32 record count │ u64 digest │ u8 id length │ id bytes
/// ```
/// (integers little-endian). Entries cover disjoint, ascending ranges of the frame's
/// records; records outside every entry were appended without a tag.
enum RequestSection {
    /// Bytes of one entry before its id.
    static let entryHeaderBytes = 4 + 4 + 8 + 1

    /// The most bytes a section can take for a frame of `recordCount` records (every record
    /// its own request with a 64-byte id): bounds what a plausible frame header may claim.
    static func maxBytes(recordCount: Int) -> Int {
        2 + recordCount * (entryHeaderBytes + RequestTag.maxIDBytes)
    }

    /// Bytes `entries` take, given as (first record index, count, tag).
    static func sizeBytes(_ tags: some Collection<RequestTag>) -> Int {
        tags.reduce(2) { $0 + entryHeaderBytes + $1.id.count }
    }

    /// Writes the section at `offset`; returns the bytes written.
    static func encode(_ entries: [(index: Int, count: Int, tag: RequestTag)],
                       into buffer: UnsafeMutableRawBufferPointer, at start: Int) -> Int {
        precondition(!entries.isEmpty && entries.count <= Int(UInt16.max), "a section holds 1…65535 entries")
        var offset = start
        buffer.storeBytes(of: UInt16(entries.count).littleEndian, toByteOffset: offset, as: UInt16.self)
        offset += 2
        for entry in entries {
            buffer.storeBytes(of: UInt32(entry.index).littleEndian, toByteOffset: offset, as: UInt32.self)
            buffer.storeBytes(of: UInt32(entry.count).littleEndian, toByteOffset: offset + 4, as: UInt32.self)
            buffer.storeBytes(of: entry.tag.digest.littleEndian, toByteOffset: offset + 8, as: UInt64.self)
            buffer.storeBytes(of: UInt8(entry.tag.id.count), toByteOffset: offset + 16, as: UInt8.self)
            offset += entryHeaderBytes
            for byte in entry.tag.id {
                buffer[offset] = byte
                offset += 1
            }
        }
        return offset - start
    }

    /// Reads a section that must fill `bytes` exactly and fit a frame of `recordCount`
    /// records starting at `firstLSN`. Nil when it does not: a frame whose checksum holds
    /// but whose section is malformed was written wrong, and is reported as damage.
    static func decode(_ bytes: UnsafeRawBufferPointer, recordCount: Int, firstLSN: LSN) -> [RequestEntry]? {
        guard bytes.count >= 2 else { return nil }
        let count = Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self)))
        guard count >= 1 else { return nil }
        var entries: [RequestEntry] = []
        entries.reserveCapacity(count)
        var offset = 2
        var nextFreeIndex = 0
        for _ in 0..<count {
            guard offset + entryHeaderBytes <= bytes.count else { return nil }
            let index = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let records = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
            let digest = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            let idLength = Int(bytes[offset + 16])
            offset += entryHeaderBytes
            guard index >= nextFreeIndex, records >= 1, index + records <= recordCount,
                  offset + idLength <= bytes.count,
                  let tag = RequestTag(idBytes: Array(bytes[offset..<(offset + idLength)]), digest: digest) else { return nil }
            offset += idLength
            nextFreeIndex = index + records
            entries.append(RequestEntry(tag: tag, firstLSN: firstLSN + LSN(index), count: records))
        }
        return offset == bytes.count ? entries : nil
    }
}
