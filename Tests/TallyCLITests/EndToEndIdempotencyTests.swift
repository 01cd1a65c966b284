import Foundation
import Testing

/// `Idempotency-Key` on the real binary: a retry is counted once whatever happened between
/// the two tries — a kill -9, a checkpoint, another node — and answered as the first was;
/// the same key with other increments gets 409; after the retention window a retry counts
/// again, as documented.
@Suite(.serialized) struct EndToEndIdempotencyTests {
    /// POSTs an NDJSON body with an `Idempotency-Key`; returns status, body and whether the
    /// answer says it replays an earlier one.
    static func post(_ daemon: Daemon, id: String, _ lines: [(String, Int)]) throws -> (status: Int, body: String, replayed: Bool) {
        let body = lines.map { #"{"key":"\#($0.0)","value":\#($0.1)}"# }.joined(separator: "\n")
        let output = try Daemon.curl(["-s", "-i", "-X", "POST", "-H", "Idempotency-Key: \(id)", "-H",
                                      "Content-Type: application/x-ndjson", "--data-binary", body,
                                      "http://127.0.0.1:\(daemon.port)/increments"])
        let parts = output.components(separatedBy: "\r\n\r\n")
        let head = parts.first ?? ""
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, parts.dropFirst().joined(separator: "\r\n\r\n"), head.lowercased().contains("idempotent-replayed: true"))
    }

    static func waitForTotal(_ key: String, _ expected: Int, seconds: Int = 15) async throws {
        for _ in 0..<(seconds * 10) {
            if try Daemon.totals([key])[key] == expected { return }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test func aRetryIsCountedOnceAcrossKillNineCheckpointsAndNodes() async throws {
        let data = TemporaryDirectory()
        let key = UUID().uuidString.lowercased()
        let id = "order-\(UUID().uuidString.prefix(8))"
        let first = try Daemon(dataDirectory: data.path + "/a", extraArguments: ["--checkpoint-interval", "60s"])
        try await first.waitUntilServing()
        try await first.waitForFirstCheckpoint()
        let taken = try Self.post(first, id: id, [(key, 5), (key, 7)])
        #expect(taken.status == 200 && !taken.replayed, "\(taken)")
        let again = try Self.post(first, id: id, [(key, 5), (key, 7)])
        #expect(again.status == 200 && again.replayed && again.body == taken.body, "same LSNs: \(again)")
        let other = try Self.post(first, id: id, [(key, 6)])
        #expect(other.status == 409, "the same key with other increments: \(other)")

        // kill -9 before any checkpoint: the replay rebuilds the window from the log.
        try await first.crash()
        let restarted = try Daemon(dataDirectory: data.path + "/a", port: first.port)
        try await restarted.waitUntilServing()
        let afterCrash = try Self.post(restarted, id: id, [(key, 5), (key, 7)])
        #expect(afterCrash.status == 200 && afterCrash.replayed && afterCrash.body == taken.body, "\(afterCrash)")
        try await Self.waitForTotal(key, 12)
        #expect(try Daemon.totals([key])[key] == 12, "counted once")

        // After the checkpoint, on a second node sharing the database: found in PostgreSQL.
        let second = try Daemon(dataDirectory: data.path + "/b")
        try await second.waitUntilServing()
        try await second.waitForFirstCheckpoint()
        let elsewhere = try Self.post(second, id: id, [(key, 5), (key, 7)])
        #expect(elsewhere.status == 200 && elsewhere.replayed && elsewhere.body == taken.body, "\(elsewhere)")
        #expect(try Self.post(second, id: id, [(key, 1)]).status == 409)

        // The same new request on both nodes before either checkpoints: both answer 200, and
        // the checkpoints count it once.
        let both = "both-\(UUID().uuidString.prefix(8))"
        #expect(try Self.post(restarted, id: both, [(key, 100)]).status == 200)
        #expect(try Self.post(second, id: both, [(key, 100)]).status == 200)
        for daemon in [restarted, second] {
            kill(daemon.pid, SIGTERM)  // the final checkpoints
            #expect(try await daemon.waitForExit(seconds: 15) == 0)
        }
        #expect(try Daemon.totals([key])[key] == 112, "12, then 100 once")
    }

    @Test func afterTheRetentionWindowARetryCountsAgain() async throws {
        let data = TemporaryDirectory()
        let key = UUID().uuidString.lowercased()
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--idempotency-window", "2s"])
        try await daemon.waitUntilServing()
        #expect(try Self.post(daemon, id: "short-lived", [(key, 3)]).status == 200)
        try await Self.waitForTotal(key, 3)
        try await Task.sleep(for: .seconds(4))  // the window, plus a checkpoint that prunes
        let late = try Self.post(daemon, id: "short-lived", [(key, 3)])
        #expect(late.status == 200 && !late.replayed, "\(late)")
        try await Self.waitForTotal(key, 6)
        #expect(try Daemon.totals([key])[key] == 6, "documented: a retry after the window is a new request")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
    }
}
