import Testing
import TallyLog
@testable import TallyCore

/// The compactor's open-addressing table against a `Dictionary` model.
@Suite struct CellTableTests {
    @Test func randomAddsMatchADictionaryThroughEveryGrowth() {
        var generator = SplitMix64(state: 42)
        var table = CellTable()
        var model: [DeltaTable.Cell: Int128] = [:]
        for _ in 0..<50_000 {
            // Few distinct highs and days: many probes collide, runs wrap around the array.
            let key = LogKey(high: UInt64.random(in: 0..<64, using: &generator), low: UInt64.random(in: 0..<300, using: &generator))
            let day = Day(number: Int32.random(in: -2...2, using: &generator))
            let value = Int128(Int64.random(in: 1...Int64.max, using: &generator))
            table.add(value, key: key, day: day)
            model[DeltaTable.Cell(key: key, day: day), default: 0] += value
        }
        #expect(table.count == model.count)
        for (cell, sum) in model { #expect(table.sum(key: cell.key, day: cell.day) == sum) }
        var seen = 0
        table.forEach { cell, sum in
            seen += 1
            #expect(model[cell] == sum)
        }
        #expect(seen == model.count)
        #expect(table.sum(key: LogKey(high: 999, low: 999), day: Day(number: 0)) == 0)
    }

    @Test func int128SumsDoNotWrap() {
        var table = CellTable()
        let key = LogKey(high: 1, low: 2)
        for _ in 0..<4 { table.add(Int128(Int64.max), key: key, day: Day(number: 7)) }
        #expect(table.sum(key: key, day: Day(number: 7)) == Int128(Int64.max) * 4)
    }

    @Test func equalityIgnoresInsertionOrderAndCapacity() {
        var first = CellTable()
        var second = CellTable(minimumCapacity: 10_000)
        let cells = (0..<1_000).map { LogKey(high: UInt64($0), low: 3) }
        for key in cells { first.add(1, key: key, day: Day(number: 1)) }
        for key in cells.reversed() { second.add(1, key: key, day: Day(number: 1)) }
        #expect(first == second)
        second.add(1, key: cells[0], day: Day(number: 1))
        #expect(first != second)
    }

    @Test func aCopyIsIndependent() {
        var original = CellTable()
        original.add(5, key: LogKey(high: 1, low: 1), day: Day(number: 0))
        var copy = original
        copy.add(5, key: LogKey(high: 1, low: 1), day: Day(number: 0))
        #expect(original.sum(key: LogKey(high: 1, low: 1), day: Day(number: 0)) == 5)
        #expect(copy.sum(key: LogKey(high: 1, low: 1), day: Day(number: 0)) == 10)
    }
}
