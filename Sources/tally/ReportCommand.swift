import ArgumentParser
import Foundation
import TallyCore
import TallyLog
import TallyPostgres

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print daily totals from PostgreSQL: one day's report, or a range of days.",
        discussion: """
            Reads what PostgreSQL holds, as GET /reports/daily does (every node's checkpoints, at \
            most 10 s behind): one row per key and UTC day with its total and, when one is \
            registered, its name. --day prints one day, --from/--to every day of a range; --key \
            keeps one key. Rows come in day order, then key order. Totals are exact integers.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, csv, json
    }

    @OptionGroup var database: DatabaseOptions

    @Option(help: "One UTC day, YYYY-MM-DD.")
    var day: String?

    @Option(help: "First day of a range, YYYY-MM-DD (with --to).")
    var from: String?

    @Option(help: "Last day of a range, YYYY-MM-DD (with --from).")
    var to: String?

    @Option(help: "Only this key (a UUID).")
    var key: String?

    @Option(help: "table, csv or json (one JSON object per line).")
    var format: Format = .table

    mutating func run() async throws {
        let days = try resolvedDays()
        let only = try key.map { text -> LogKey in
            guard let uuid = UUID(uuidString: text) else { throw ValidationError("--key must be a UUID") }
            return LogKey(uuid)
        }
        let store = PostgresCountStore(pool: PostgresClient(url: try database.resolvedURL()))
        var printer = ReportPrinter(format: format)
        printer.begin()
        if let only {
            // One key: its days in one query, named from the report of its first day.
            let rows = try await store.dailyTotals(of: only, in: days, checkpointOf: UUID()).value
            var name: String?
            if let first = rows.first {
                name = try await store.dailyReport(day: first.day, after: Self.before(only), limit: 1).entries.first?.name
            }
            for row in rows { printer.row(day: row.day, key: only, total: row.total, name: name) }
        } else {
            var day = days.lowerBound
            while day <= days.upperBound {
                var after: LogKey?
                repeat {
                    let page = try await store.dailyReport(day: day, after: after, limit: 10_000)
                    for entry in page.entries { printer.row(day: day, key: entry.key, total: entry.total, name: entry.name) }
                    after = page.nextAfter
                } while after != nil
                day = day.adding(days: 1)
            }
        }
        printer.end()
    }

    private func resolvedDays() throws -> ClosedRange<Day> {
        func parse(_ text: String, _ option: String) throws -> Day {
            guard let day = Day(iso: text) else { throw ValidationError("\(option) must be a date YYYY-MM-DD") }
            return day
        }
        switch (day, from, to) {
        case (let day?, nil, nil):
            let only = try parse(day, "--day")
            return only...only
        case (nil, let from?, let to?):
            let first = try parse(from, "--from")
            let last = try parse(to, "--to")
            guard first <= last else { throw ValidationError("--from must not be after --to") }
            return first...last
        default:
            throw ValidationError("give --day D, or --from D --to D")
        }
    }

    /// The key just before `key`, so that a report page "after" it starts at `key`.
    private static func before(_ key: LogKey) -> LogKey? {
        if key.low > 0 { return LogKey(high: key.high, low: key.low - 1) }
        return key.high > 0 ? LogKey(high: key.high - 1, low: .max) : nil
    }
}

/// Writes report rows as they arrive, in one of the formats.
struct ReportPrinter {
    let format: ReportCommand.Format
    private var rows = 0
    private var sum = DecimalTotal.zero

    init(format: ReportCommand.Format) {
        self.format = format
    }

    mutating func begin() {
        switch format {
        case .table: print(pad("day", 10) + "  " + pad("key", 36) + "  " + pad("total", 20) + "  name")
        case .csv: print("day,key,total,name")
        case .json: break
        }
    }

    mutating func row(day: Day, key: LogKey, total: DecimalTotal, name: String?) {
        rows += 1
        sum = sum.adding(total)
        switch format {
        case .table:
            print(pad(day.iso, 10) + "  " + key.uuidString + "  " + pad(total.description, 20) + "  " + (name ?? ""))
        case .csv:
            print("\(day.iso),\(key.uuidString),\(total),\(name.map(Self.csvField) ?? "")")
        case .json:
            var line = #"{"day":"\#(day.iso)","key":"\#(key.uuidString)","total":\#(total)"#
            if let name, let encoded = try? JSONEncoder().encode(name), let text = String(data: encoded, encoding: .utf8) {
                line += #","name":\#(text)"#
            }
            print(line + "}")
        }
    }

    func end() {
        if format == .table { print("\(rows) rows, total \(sum)") }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
