import Foundation
import Testing

/// PostgreSQL outages, a disk budget, the freshness bound and abusive clients, against the
/// real binary. Each test that stops PostgreSQL runs its own server.
@Suite(.serialized) struct EndToEndOutageTests {
    static func keys(_ count: Int) -> [String] { (0..<count).map { _ in UUID().uuidString.lowercased() } }

    static func httpStatus(_ url: String, method: String = "GET", body: String? = nil) throws -> String {
        var arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, url]
        if let body { arguments += ["-d", body] }
        return try Daemon.curl(arguments)
    }

    @Test func aPostgresOutageUnderLoadStillAcknowledgesEverythingAndConverges() async throws {
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let keys = Self.keys(20)
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url)
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 8)
        try await Task.sleep(for: .seconds(1))

        postgres.stopImmediately()
        var sawLag = false
        let outageEnd = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < outageEnd {
            if try Self.httpStatus("http://127.0.0.1:\(daemon.port)/readyz") == "503" { sawLag = true }
            try await Task.sleep(for: .milliseconds(500))
        }
        try postgres.start()
        let restartedAt = ContinuousClock.now
        try await Task.sleep(for: .seconds(1))
        let ledger = load.stop()
        #expect(sawLag, "/readyz reported the lag while PostgreSQL was down")
        #expect(ledger.refusedByStatus.isEmpty, "every request got 200: \(ledger.refusedByStatus)")
        #expect(ledger.requestsUnanswered == 0)

        // Converges within two intervals (1 s each here) plus the retry backoff (≤ 5 s).
        var converged = false
        while ContinuousClock.now < restartedAt + .seconds(10) {
            let totals = try Daemon.totals(keys, databaseURL: postgres.url)
            if keys.allSatisfy({ totals[$0] == (ledger.acknowledged[$0] ?? 0) }) {
                converged = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(converged, "PostgreSQL caught up after the outage")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 10) == 0)
    }

    @Test func overTheDiskBudgetIncrementsGet503UntilPostgresReturns() async throws {
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let keys = Self.keys(5)
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url,
                                extraArguments: ["--max-log-bytes", "32KiB"])
        try await daemon.waitUntilServing()
        postgres.stopImmediately()

        let load = LoadGenerator(port: daemon.port, keys: keys)
        load.start(clients: 4)
        var saw503 = false
        var probesAcknowledged = 0
        for _ in 0..<100 where !saw503 {
            try await Task.sleep(for: .milliseconds(100))
            let headers = try Daemon.curl(["-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "-d",
                                           #"{"key":"\#(keys[0])","value":1}"#, "http://127.0.0.1:\(daemon.port)/increment"])
            if headers.hasPrefix("HTTP/1.1 503") {
                saw503 = true
                #expect(headers.lowercased().contains("retry-after:"))
            } else if headers.hasPrefix("HTTP/1.1 200") {
                probesAcknowledged += 1
            }
        }
        #expect(saw503, "the budget turns into 503")
        var ledger = load.stop()
        ledger.acknowledged[keys[0], default: 0] += probesAcknowledged
        #expect((ledger.refusedByStatus[503] ?? 0) > 0)

        try postgres.start()
        var resumed = false
        for _ in 0..<100 where !resumed {
            try await Task.sleep(for: .milliseconds(200))
            resumed = try Self.httpStatus("http://127.0.0.1:\(daemon.port)/increment", method: "POST",
                                          body: #"{"key":"\#(keys[1])","value":1000000}"#) == "200"
        }
        #expect(resumed, "200s resume once a checkpoint frees the log")
        if resumed { ledger.acknowledged[keys[1], default: 0] += 1_000_000 }
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 10) == 0)
        let totals = try Daemon.totals(keys, databaseURL: postgres.url)
        for key in keys {
            // Refused requests are in neither bound; none was unanswered.
            #expect(totals[key] == (ledger.acknowledged[key] ?? 0), "key \(key)")
        }
    }

    @Test func everyMarkedIncrementIsInPostgresWithinTenSeconds() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--checkpoint-interval", "9s"])
        try await daemon.waitUntilServing()
        let load = LoadGenerator(port: daemon.port, keys: Self.keys(50))
        load.start(clients: 4)
        defer { _ = load.stop() }

        let seconds = Int(ProcessInfo.processInfo.environment["TALLY_FRESHNESS_SECONDS"] ?? "") ?? 30
        var pending: [(key: String, acknowledgedAt: ContinuousClock.Instant)] = []
        var worst = Duration.zero
        let end = ContinuousClock.now + .seconds(seconds)
        var nextMarker = ContinuousClock.now
        while ContinuousClock.now < end || !pending.isEmpty {
            if ContinuousClock.now >= nextMarker && ContinuousClock.now < end {
                let key = UUID().uuidString.lowercased()
                if try Self.httpStatus("http://127.0.0.1:\(daemon.port)/increment", method: "POST",
                                       body: #"{"key":"\#(key)","value":1}"#) == "200" {
                    pending.append((key, .now))
                }
                nextMarker = .now + .seconds(1)
            }
            if !pending.isEmpty {
                let totals = try Daemon.totals(pending.map(\.key))
                let now = ContinuousClock.now
                pending.removeAll { marker in
                    guard totals[marker.key] == 1 else { return false }
                    worst = max(worst, now - marker.acknowledgedAt)
                    return true
                }
                for marker in pending where now - marker.acknowledgedAt > .seconds(10) {
                    Issue.record("marker \(marker.key) not in PostgreSQL 10 s after its 200")
                }
                pending.removeAll { now - $0.acknowledgedAt > .seconds(10) }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(worst <= .seconds(10), "worst freshness \(worst)")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 10) == 0)
    }

    @Test func abusiveClientsDoNotStopOthers() async throws {
        let data = TemporaryDirectory()
        let daemon = try Daemon(dataDirectory: data.path + "/node")
        try await daemon.waitUntilServing()
        let url = "http://127.0.0.1:\(daemon.port)/increment"
        let key = UUID().uuidString.lowercased()

        // 1000 connections that never send a byte. The test needs that many descriptors
        // whatever the machine's default soft limit (often 1024).
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = max(limit.rlim_cur, min(limit.rlim_max, 8_192))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        var idle: [Int32] = []
        for _ in 0..<1_000 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(daemon.port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected == 0 { idle.append(fd) } else { close(fd) }
        }
        defer { idle.forEach { close($0) } }
        #expect(idle.count == 1_000)

        // A slowloris client: headers one byte at a time, in the background.
        let port = daemon.port
        let slow = Task.detached {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            for byte in Array("POST /increment HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 30) {
                var value = byte
                if send(fd, &value, 1, Int32(MSG_NOSIGNAL)) != 1 { return }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }

        // A 10 MB body is refused with 413, quickly.
        let bigBody = data.path + "/big.json"
        try Data(repeating: UInt8(ascii: " "), count: 10 << 20).write(to: URL(fileURLWithPath: bigBody))
        let big = try Daemon.curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "@\(bigBody)", url])
        #expect(big == "413")

        // Meanwhile other clients are served.
        for _ in 0..<20 {
            #expect(try Self.httpStatus(url, method: "POST", body: #"{"key":"\#(key)","value":1}"#) == "200")
        }
        #expect(daemon.residentBytes < 300 << 20, "memory stays bounded: \(daemon.residentBytes) bytes")
        slow.cancel()
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0, "\(daemon.log)")
        #expect(try Daemon.totals([key])[key] == 20)
    }
}
