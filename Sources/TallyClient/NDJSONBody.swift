#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// A batch as the body of `POST /increments`: one `{"key":"…","value":N}` line per key.
/// Written byte by byte (no JSONEncoder) because the daemon's parser is strict and the
/// shape is fixed.
enum NDJSONBody {
    /// Bytes of one line at most: 8 + 36 (key) + 10 + 19 (value) + 2.
    static let maxLineBytes = 76

    static func encode(_ batch: IncrementBatch, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: batch.lines.count * maxLineBytes)
        for line in batch.lines {
            buffer.writeStaticString(#"{"key":""#)
            writeUUID(line.key, to: &buffer)
            buffer.writeStaticString(#"","value":"#)
            buffer.writeString(String(line.value))
            buffer.writeStaticString("}\n")
        }
        return buffer
    }

    /// The 8-4-4-4-12 lower-case form.
    static func writeUUID(_ uuid: UUID, to buffer: inout ByteBuffer) {
        withUnsafeBytes(of: uuid.uuid) { bytes in
            for (index, byte) in bytes.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { buffer.writeInteger(UInt8(ascii: "-")) }
                buffer.writeInteger(hexDigit(byte >> 4))
                buffer.writeInteger(hexDigit(byte & 0x0F))
            }
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
