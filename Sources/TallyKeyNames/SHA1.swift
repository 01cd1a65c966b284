/// SHA-1 (FIPS 180-4), only for UUIDv5 keys (RFC 9562 names it for version 5). Not for
/// anything that needs collision resistance: a key name is chosen by its owner, not an
/// adversary, and UUIDv5 is the standard way to give a name a stable UUID.
///
/// Written here rather than pulled from a crypto package so that the `tally` tool and every
/// client share one tiny dependency-free implementation; tests pin it to known vectors.
struct SHA1 {
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
    private var block: [UInt8] = []
    private var lengthBytes: UInt64 = 0

    static let blockSizeBytes = 64

    init() {
        block.reserveCapacity(Self.blockSizeBytes)
    }

    mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes {
            block.append(byte)
            lengthBytes &+= 1
            if block.count == Self.blockSizeBytes {
                compress()
                block.removeAll(keepingCapacity: true)
            }
        }
    }

    /// The 20-byte digest; the value is spent afterwards.
    mutating func finish() -> [UInt8] {
        let lengthBits = lengthBytes &* 8
        block.append(0x80)
        if block.count > Self.blockSizeBytes - 8 {
            block += [UInt8](repeating: 0, count: Self.blockSizeBytes - block.count)
            compress()
            block.removeAll(keepingCapacity: true)
        }
        block += [UInt8](repeating: 0, count: Self.blockSizeBytes - 8 - block.count)
        for shift in stride(from: 56, through: 0, by: -8) { block.append(UInt8(truncatingIfNeeded: lengthBits >> UInt64(shift))) }
        compress()
        var digest: [UInt8] = []
        digest.reserveCapacity(20)
        for word in [state.0, state.1, state.2, state.3, state.4] {
            for shift in stride(from: 24, through: 0, by: -8) { digest.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return digest
    }

    /// One 64-byte block into the state: the 80-round schedule of FIPS 180-4, section 6.1.2.
    private mutating func compress() {
        var words = [UInt32](repeating: 0, count: 80)
        for index in 0..<16 {
            words[index] = UInt32(block[index * 4]) << 24 | UInt32(block[index * 4 + 1]) << 16
                | UInt32(block[index * 4 + 2]) << 8 | UInt32(block[index * 4 + 3])
        }
        for index in 16..<80 {
            words[index] = rotateLeft(words[index - 3] ^ words[index - 8] ^ words[index - 14] ^ words[index - 16], by: 1)
        }
        var (a, b, c, d, e) = state
        for index in 0..<80 {
            let (f, k): (UInt32, UInt32) = switch index {
            case 0..<20: ((b & c) | (~b & d), 0x5A82_7999)
            case 20..<40: (b ^ c ^ d, 0x6ED9_EBA1)
            case 40..<60: ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
            default: (b ^ c ^ d, 0xCA62_C1D6)
            }
            let next = rotateLeft(a, by: 5) &+ f &+ e &+ k &+ words[index]
            (e, d, c, b, a) = (d, c, rotateLeft(b, by: 30), a, next)
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }

    private func rotateLeft(_ value: UInt32, by count: UInt32) -> UInt32 {
        (value << count) | (value >> (32 - count))
    }

    static func digest<Bytes: Sequence>(_ bytes: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var hash = SHA1()
        hash.update(bytes)
        return hash.finish()
    }
}
