import Foundation
import Synchronization
import Testing

/// Reading counts on the real binary: `tally report` against the HTTP report, and a flood
/// of readers that must not cost increments more than CPU.
@Suite(.serialized) struct ReadEndToEndTests {
    @Test func tallyReportPrintsTheSameNumbersAsTheHTTPReport() async throws {
        // A PostgreSQL of its own: the day's report then holds exactly these three keys, so
        // paging by two takes exactly two pages (a shared database holds every other test's
        // keys of the day, hundreds of thousands after the load tests).
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let keys = (0..<3).map { _ in UUID().uuidString.lowercased() }
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url)
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()
        for (index, key) in keys.enumerated() {
            for _ in 0...index { #expect(try daemon.increment(key, 5) == 200) }
        }
        for _ in 0..<150 where try Daemon.totals(keys, databaseURL: postgres.url)[keys[2]] != 15 {
            try await Task.sleep(for: .milliseconds(100))
        }
        let today = try #require(try daemon.get("/readyz").status == 200 ? Self.today() : nil)

        var http: [String: Int] = [:]
        var after: String?
        var pages = 0
        repeat {
            let page = try daemon.get("/reports/daily?day=\(today)&limit=2" + (after.map { "&after=\($0)" } ?? ""))
            let body = try #require(try JSONSerialization.jsonObject(with: Data(page.body.utf8)) as? [String: Any])
            for entry in body["keys"] as? [[String: Any]] ?? [] {
                if let key = entry["key"] as? String { http[key] = entry["total"] as? Int }
            }
            after = body["next_after"] as? String
            pages += 1
        } while after != nil && pages < 10
        #expect(pages == 2, "three keys, two per page")
        #expect(http == [keys[0]: 5, keys[1]: 10, keys[2]: 15])

        let json = try Tool.run(["report", "--database-url", postgres.url, "--day", today, "--format", "json"])
        #expect(json.status == 0, "\(json.stderr)")
        var printed: [String: Int] = [:]
        for line in json.lines {
            let row = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            if let key = row["key"] as? String { printed[key] = row["total"] as? Int }
        }
        #expect(printed == http, "tally report and GET /reports/daily agree")

        let csv = try Tool.run(["report", "--database-url", postgres.url, "--from", today, "--to", today,
                                "--key", keys[1], "--format", "csv"])
        #expect(csv.lines == ["day,key,total,name", "\(today),\(keys[1]),10,"], "\(csv.stdout)\(csv.stderr)")
        let table = try Tool.run(["report", "--database-url", postgres.url, "--day", today, "--key", keys[2]])
        #expect(table.lines.last == "1 rows, total 15", "\(table.stdout)")
        #expect(try Tool.run(["report", "--database-url", postgres.url, "--day", "2026-02-30"]).status != 0)
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 10) == 0)
    }

    static func today() -> String {
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.locale = Locale(identifier: "en_US_POSIX")
        return formatter.string(from: Date())
    }

    /// A thousand slow readers (each asks again a second after its answer) keep asking for
    /// counts while PostgreSQL is made slow (a lock holds every read until its statement
    /// timeout): reads beyond the pool's bounded queue get 503 at once, increments keep their
    /// rate (at least half of the same run without the flood: the readers' own CPU, about a
    /// thousand small requests a second, is the only cost), and memory stays bounded.
    @Test func aFloodOfSlowReadsCostsIncrementsNoMoreThanCPU() async throws {
        // A PostgreSQL of its own: the lock below would stall every other test's checkpoints.
        let postgres = try PrivatePostgres()
        let data = TemporaryDirectory()
        let keys = (0..<20).map { _ in UUID().uuidString.lowercased() }
        let daemon = try Daemon(dataDirectory: data.path + "/node", databaseURL: postgres.url,
                                extraArguments: ["--read-connections", "2"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()

        func incrementRate() async throws -> (rate: Double, ledger: LoadGenerator.Ledger) {
            let load = LoadGenerator(port: daemon.port, keys: keys)
            let started = ContinuousClock.now
            load.start(clients: 4)
            try await Task.sleep(for: .seconds(3))
            let ledger = load.stop()
            let seconds = Double((ContinuousClock.now - started).components.seconds) + 0.001
            return (Double(ledger.requestsAcknowledged) / seconds, ledger)
        }
        let alone = try await incrementRate()
        let memoryBefore = daemon.residentBytes

        // Hold a lock that every count read waits on, until the end of the test.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        locker.arguments = [postgres.url, "-c", "BEGIN; LOCK TABLE tally_counts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;"]
        locker.standardOutput = FileHandle.nullDevice
        locker.standardError = FileHandle.nullDevice
        try locker.run()
        defer { if locker.isRunning { locker.terminate() } }
        try await Task.sleep(for: .milliseconds(300))

        let flood = ReadFlood(port: daemon.port, key: keys[0], connections: 1_000)
        flood.start()
        try await Task.sleep(for: .seconds(1))
        let during = try await incrementRate()
        let memoryDuring = daemon.residentBytes
        let answers = flood.stop()
        locker.terminate()
        _ = try Tool.runExternal("/usr/bin/psql", [postgres.url, "-Atc",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE tally_counts%'"])

        #expect(during.ledger.refusedByStatus.isEmpty, "increments never refused: \(during.ledger.refusedByStatus)")
        #expect(during.rate >= alone.rate * 0.5, "increments/s with the flood \(during.rate), alone \(alone.rate)")
        #expect(answers.unavailable > 0, "reads beyond the pool's queue are refused at once: \(answers)")
        #expect(answers.other == 0, "every read got 200 or 503: \(answers)")
        #expect(memoryDuring - memoryBefore < 150 << 20, "memory bounded: \(memoryBefore) → \(memoryDuring)")
        kill(daemon.pid, SIGTERM)
        #expect(try await daemon.waitForExit(seconds: 15) == 0)
    }
}

/// Many keep-alive connections each asking `GET /counts/{key}` again `pause` after its
/// answer, driven by a few threads with poll(2): a thousand readers without a thousand threads.
final class ReadFlood: Sendable {
    struct Answers: Sendable, CustomStringConvertible {
        var ok = 0
        var unavailable = 0
        var other = 0
        var description: String { "200: \(ok), 503: \(unavailable), other: \(other)" }
    }

    let port: Int
    let key: String
    let connections: Int
    let pause: Duration
    private let stopping = Atomic(false)
    private let running = Atomic(0)
    private let answers = Mutex(Answers())

    init(port: Int, key: String, connections: Int, pause: Duration = .seconds(1)) {
        self.port = port
        self.key = key
        self.connections = connections
        self.pause = pause
    }

    func start(threads: Int = 4) {
        let request = Array("GET /counts/\(key) HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        for thread in 0..<threads {
            running.add(1, ordering: .relaxed)
            let share = connections / threads + (thread < connections % threads ? 1 : 0)
            Thread { [self] in
                var local = Answers()
                var sockets: [Int32] = (0..<share).map { _ in Self.connect(port: port) }
                var buffers = [[UInt8]](repeating: [], count: share)
                for fd in sockets where fd >= 0 { _ = request.withUnsafeBytes { send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) } }
                var chunk = [UInt8](repeating: 0, count: 4096)
                var askAgainAt = [ContinuousClock.Instant?](repeating: nil, count: share)
                while !stopping.load(ordering: .relaxed) {
                    let now = ContinuousClock.now
                    for index in sockets.indices where sockets[index] >= 0 {
                        if let due = askAgainAt[index], due <= now {
                            askAgainAt[index] = nil
                            _ = request.withUnsafeBytes { send(sockets[index], $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                        }
                    }
                    var polls = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                    guard poll(&polls, nfds_t(polls.count), 20) > 0 else { continue }
                    for (index, entry) in polls.enumerated() where entry.revents != 0 && sockets[index] >= 0 {
                        let count = chunk.withUnsafeMutableBytes { recv(sockets[index], $0.baseAddress!, 4096, 0) }
                        guard count > 0 else {
                            close(sockets[index])
                            sockets[index] = -1
                            continue
                        }
                        buffers[index] += chunk[0..<count]
                        while let (status, length) = Self.completeResponse(buffers[index]) {
                            switch status {
                            case 200: local.ok += 1
                            case 503: local.unavailable += 1
                            default: local.other += 1
                            }
                            buffers[index].removeFirst(length)
                            askAgainAt[index] = ContinuousClock.now + pause
                        }
                    }
                }
                for fd in sockets where fd >= 0 { close(fd) }
                answers.withLock {
                    $0.ok += local.ok
                    $0.unavailable += local.unavailable
                    $0.other += local.other
                }
                running.subtract(1, ordering: .releasing)
            }.start()
        }
    }

    func stop() -> Answers {
        stopping.store(true, ordering: .relaxed)
        while running.load(ordering: .acquiring) > 0 { usleep(10_000) }
        return answers.withLock { $0 }
    }

    private static func connect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            close(fd)
            return -1
        }
        return fd
    }

    /// The status and byte length of the first complete response in `bytes`, if there is one.
    private static func completeResponse(_ bytes: [UInt8]) -> (Int, Int)? {
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let status = lines.first.flatMap({ Int($0.split(separator: " ").dropFirst().first ?? "") }) else { return nil }
        let length = lines.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        let total = end.upperBound + length
        return bytes.count >= total ? (status, total) : nil
    }
}
