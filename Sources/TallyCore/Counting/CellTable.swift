import TallyLog

/// The compactor's hash table: (key, day) → Int128 sum, open addressing with linear probing.
///
/// Why not `Dictionary<Cell, Int128>`: on a million distinct keys every absorb is a cache
/// miss, and the dictionary adds SipHash, a separate metadata word and a generic probe
/// around it. Here a slot is one 40-byte record (key, day, sum, occupancy) in one array, the
/// hash is a seeded multiply-xorshift (the keys are UUIDs, already random; the per-process
/// seed keeps chosen keys from piling into one run), and a probe usually touches one cache
/// line. The table doubles at 70 % load, so memory stays near 57 bytes per cell.
///
/// A value type: the array's copy-on-write gives it value semantics, as the compactor's
/// `take()` and reads expect.
struct CellTable: Sendable {
    struct Slot: Sendable {
        var keyHigh: UInt64 = 0
        var keyLow: UInt64 = 0
        var sumLow: UInt64 = 0
        var sumHigh: Int64 = 0
        var day: Int32 = 0
        var isUsed = false

        var sum: Int128 {
            get { Int128(sumHigh) << 64 | Int128(sumLow) }
            set {
                sumLow = UInt64(truncatingIfNeeded: newValue)
                sumHigh = Int64(truncatingIfNeeded: newValue >> 64)
            }
        }
    }

    private static let seed = UInt64.random(in: 1...UInt64.max)
    private static let minimumCapacity = 16
    /// Grow when `count` would pass this fraction of the slots.
    private static let maxLoadNumerator = 7
    private static let maxLoadDenominator = 10

    private var slots: [Slot]
    private(set) var count = 0

    init(minimumCapacity: Int = 0) {
        slots = Array(repeating: Slot(), count: Self.capacity(for: minimumCapacity))
    }

    /// The power of two that holds `count` cells under the load bound.
    private static func capacity(for count: Int) -> Int {
        var capacity = minimumCapacity
        while capacity * maxLoadNumerator < count * maxLoadDenominator { capacity *= 2 }
        return capacity
    }

    @inline(__always)
    private static func hash(high: UInt64, low: UInt64, day: Int32) -> UInt64 {
        var h = (high ^ seed) &* 0x9E37_79B9_7F4A_7C15
        h ^= low &* 0xC2B2_AE3D_27D4_EB4F
        h ^= UInt64(UInt32(bitPattern: day)) &* 0x1656_67B1_9E37_79F9
        h ^= h >> 32
        h &*= 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 29)
    }

    /// The slot holding (key, day), or the empty slot where it would go.
    @inline(__always)
    private func index(high: UInt64, low: UInt64, day: Int32) -> Int {
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: Self.hash(high: high, low: low, day: day)) & mask
        return slots.withUnsafeBufferPointer { buffer in
            while true {
                let slot = buffer[index]
                if !slot.isUsed || (slot.keyHigh == high && slot.keyLow == low && slot.day == day) { return index }
                index = (index + 1) & mask  // never full: the load bound keeps empty slots
            }
        }
    }

    /// Adds `value` to the sum of (key, day).
    @inline(__always)
    mutating func add(_ value: Int128, key: LogKey, day: Day) {
        if (count + 1) * Self.maxLoadDenominator > slots.count * Self.maxLoadNumerator { grow() }
        let index = index(high: key.high, low: key.low, day: day.number)
        slots.withUnsafeMutableBufferPointer { buffer in
            if !buffer[index].isUsed {
                buffer[index] = Slot(keyHigh: key.high, keyLow: key.low, day: day.number, isUsed: true)
                count += 1
            }
            buffer[index].sum += value
        }
    }

    /// The sum of (key, day), 0 when absent.
    func sum(key: LogKey, day: Day) -> Int128 {
        let slot = slots[index(high: key.high, low: key.low, day: day.number)]
        return slot.isUsed ? slot.sum : 0
    }

    mutating func reserveCapacity(_ cells: Int) {
        let capacity = Self.capacity(for: cells)
        if capacity > slots.count { rehash(to: capacity) }
    }

    private mutating func grow() {
        rehash(to: slots.count * 2)
    }

    private mutating func rehash(to capacity: Int) {
        precondition(capacity.nonzeroBitCount == 1 && capacity * Self.maxLoadNumerator >= count * Self.maxLoadDenominator)
        let old = slots
        slots = Array(repeating: Slot(), count: capacity)
        let mask = capacity - 1
        slots.withUnsafeMutableBufferPointer { buffer in
            for slot in old where slot.isUsed {
                var index = Int(truncatingIfNeeded: Self.hash(high: slot.keyHigh, low: slot.keyLow, day: slot.day)) & mask
                while buffer[index].isUsed { index = (index + 1) & mask }
                buffer[index] = slot
            }
        }
    }

    /// Every cell with its sum, in no particular order.
    func forEach(_ body: (DeltaTable.Cell, Int128) throws -> Void) rethrows {
        for slot in slots where slot.isUsed {
            try body(DeltaTable.Cell(key: LogKey(high: slot.keyHigh, low: slot.keyLow), day: Day(number: slot.day)), slot.sum)
        }
    }
}

extension CellTable: Equatable {
    /// The same cells with the same sums, whatever the slot order.
    static func == (lhs: CellTable, rhs: CellTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var equal = true
        lhs.forEach { cell, sum in
            if equal && rhs.sum(key: cell.key, day: cell.day) != sum { equal = false }
        }
        return equal
    }
}
