import Foundation
import Testing

/// The compactor's memory bound on the real binary: PostgreSQL away, a flood of fresh keys.
@Suite(.serialized) struct EndToEndMemoryBoundTests {
    /// Fresh keys under one random prefix, so that PostgreSQL can be asked about all of them
    /// with one range query.
    struct KeySpace {
        let prefix = String(format: "%08x", UInt32.random(in: 0...UInt32.max))
        func key(_ index: Int) -> String {
            let digits = String(format: "%012x", index)
            return "\(prefix)-0000-4000-8000-\(digits)"
        }
        var range: String {
            "key BETWEEN '\(prefix)-0000-0000-0000-000000000000' AND '\(prefix)-ffff-ffff-ffff-ffffffffffff'"
        }
    }

    /// POSTs `count` increments of value 1, keys `first..<first+count`, as one NDJSON body.
    static func postBulk(_ daemon: Daemon, _ keys: KeySpace, first: Int, count: Int, scratch: String) throws -> Int {
        var body = ""
        body.reserveCapacity(count * 60)
        for index in first..<(first + count) { body += #"{"key":"\#(keys.key(index))","value":1}"# + "\n" }
        try body.write(toFile: scratch, atomically: false, encoding: .utf8)
        return Int(try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                    "-H", "Content-Type: application/x-ndjson", "--data-binary", "@\(scratch)",
                                    "http://127.0.0.1:\(daemon.port)/increments"])) ?? 0
    }

    static func metric(_ daemon: Daemon, _ name: String) throws -> Double {
        let line = try daemon.get("/metrics").body.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ").last!) } ?? -1
    }

    @Test func pendingKeysStayWithinTheirBudgetWhilePostgresIsAwayAndEveryKeyLandsOnce() async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = Int(environment["TALLY_MEMORY_BOUND_KEYS"] ?? "") ?? 400_000
        let budget = total / 20
        let perBody = 5_000
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let keys = KeySpace()
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url,
                                extraArguments: ["--max-pending-keys", String(budget), "--max-batch-increments", String(perBody),
                                                 "--max-batch-bytes", "1MiB"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        postgres.stopImmediately()

        let residentBefore = daemon.residentBytes
        var residentPeak = residentBefore
        var pendingPeak = 0.0
        var sawOverBudget = false
        for first in stride(from: 0, to: total, by: perBody) {
            let status = try Self.postBulk(daemon, keys, first: first, count: perBody, scratch: data.path + "/body.ndjson")
            #expect(status == 200, "bulk body at \(first) answered \(status): 200s keep coming while PostgreSQL is away")
            if status != 200 { break }
            if first % (perBody * 8) == 0 {
                residentPeak = max(residentPeak, daemon.residentBytes)
                pendingPeak = max(pendingPeak, try Self.metric(daemon, "tally_pending_keys"))
                if try Self.metric(daemon, "tally_compactor_over_budget") == 1 { sawOverBudget = true }
            }
        }
        residentPeak = max(residentPeak, daemon.residentBytes)
        pendingPeak = max(pendingPeak, try Self.metric(daemon, "tally_pending_keys"))
        if try Self.metric(daemon, "tally_compactor_over_budget") == 1 { sawOverBudget = true }
        #expect(sawOverBudget, "/metrics says the compactor is over its budget")
        #expect(try daemon.get("/readyz").body.contains("compactor_over_budget"))
        #expect(pendingPeak <= Double(budget + perBody), "pending keys \(pendingPeak) stay within the budget \(budget) (+ one body)")
        // 69 bytes per pending key measured (BENCHMARKS.md): the unbounded table alone would
        // have grown by `total` × 69 bytes. Allow the bounded table, buffers and allocator slack.
        let growth = residentPeak - residentBefore
        let unboundedTableBytes = total * 69
        #expect(growth < unboundedTableBytes / 2 + 24 << 20,
                "RSS grew \(growth >> 20) MiB (\(residentBefore >> 20) → \(residentPeak >> 20) MiB) for \(total) fresh keys")

        try postgres.start()
        var landed = (count: 0, sum: 0, max: 0)
        for _ in 0..<600 {
            let row = try Tool.runExternal("/usr/bin/psql", [postgres.url, "-Atc",
                "SELECT count(*), coalesce(sum(total), 0), coalesce(max(total), 0) FROM tally_counts WHERE \(keys.range)"])
            let fields = row.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
            if fields.count == 3 { landed = (fields[0], fields[1], fields[2]) }
            if landed.count == total { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(landed.count == total && landed.sum == total && landed.max == 1,
                "every key exactly once: \(landed.count) keys, sum \(landed.sum), max \(landed.max) of \(total)")
        try await daemon.waitForMetric("tally_compactor_over_budget", seconds: 30) { $0 == 0 }
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
    }
}
