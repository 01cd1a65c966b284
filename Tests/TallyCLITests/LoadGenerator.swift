import Foundation
import Synchronization

/// Many keep-alive HTTP/1.1 clients POSTing increments over loopback, each on its own
/// thread with blocking sockets, recording for every request whether it was acknowledged
/// (200), refused (another status) or unanswered (sent, then the connection failed or timed
/// out — the daemon may or may not have stored it). A request that could not even connect
/// was never sent and is not recorded.
final class LoadGenerator: Sendable {
    struct Ledger: Sendable {
        var acknowledged: [String: Int] = [:]
        var unanswered: [String: Int] = [:]
        var refusedByStatus: [Int: Int] = [:]
        var requestsAcknowledged = 0
        var requestsUnanswered = 0

        mutating func merge(_ other: Ledger) {
            acknowledged.merge(other.acknowledged, uniquingKeysWith: +)
            unanswered.merge(other.unanswered, uniquingKeysWith: +)
            refusedByStatus.merge(other.refusedByStatus, uniquingKeysWith: +)
            requestsAcknowledged += other.requestsAcknowledged
            requestsUnanswered += other.requestsUnanswered
        }
    }

    let port: Int
    let keys: [String]
    /// Every request a key never used before (the ledger then keeps counts only, not keys):
    /// the load that grows the pending table fastest.
    let freshKeys: Bool
    private let stopping = Atomic(false)
    private let ledger = Mutex(Ledger())
    private let running = Atomic(0)

    init(port: Int, keys: [String]) {
        self.port = port
        self.keys = keys
        freshKeys = false
    }

    init(port: Int, freshKeys: Void) {
        self.port = port
        self.keys = []
        self.freshKeys = true
    }

    /// Starts `clients` threads that run until `stop()` or `maxDuration`, whichever is first.
    func start(clients: Int, maxDuration: Duration = .seconds(30)) {
        let deadline = ContinuousClock.now + maxDuration
        for client in 0..<clients {
            running.add(1, ordering: .relaxed)
            let thread = Thread { [self] in
                var local = Ledger()
                var generator = SystemRandomNumberGenerator()
                var connection: Int32 = -1
                var sent = 0
                while !stopping.load(ordering: .relaxed) && ContinuousClock.now < deadline && sent < 1_000_000 {
                    if connection < 0 {
                        connection = Self.connect(port: port)
                        if connection < 0 {
                            usleep(20_000)  // the daemon is down or restarting
                            continue
                        }
                    }
                    let key = freshKeys ? UUID().uuidString.lowercased() : keys[Int.random(in: 0..<keys.count, using: &generator)]
                    let value = Int.random(in: 1...1_000, using: &generator)
                    sent += 1
                    switch Self.post(connection, key: key, value: value) {
                    case .status(200):
                        if !freshKeys { local.acknowledged[key, default: 0] += value }
                        local.requestsAcknowledged += 1
                    case .status(let code):
                        local.refusedByStatus[code, default: 0] += 1
                    case .noAnswer:
                        if !freshKeys { local.unanswered[key, default: 0] += value }
                        local.requestsUnanswered += 1
                        close(connection)
                        connection = -1
                    }
                }
                if connection >= 0 { close(connection) }
                ledger.withLock { $0.merge(local) }
                running.subtract(1, ordering: .releasing)
                _ = client
            }
            thread.start()
        }
    }

    /// Stops the clients and returns what they recorded.
    func stop() -> Ledger {
        stopping.store(true, ordering: .relaxed)
        while running.load(ordering: .acquiring) > 0 { usleep(10_000) }
        return ledger.withLock { $0 }
    }

    enum Outcome { case status(Int), noAnswer }

    private static func connect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
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

    /// One request on a keep-alive connection; `.noAnswer` when the response did not arrive whole.
    private static func post(_ fd: Int32, key: String, value: Int) -> Outcome {
        let body = #"{"key":"\#(key)","value":\#(value)}"#
        let request = "POST /increment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
        let bytes = Array(request.utf8)
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL)) }
            if result <= 0 { return .noAnswer }
            written += result
        }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Bounded: a response is a few hundred bytes; give up past 64 KiB.
        while response.count < 65_536 {
            if let (status, complete) = parse(response), complete { return .status(status) }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if count <= 0 { return .noAnswer }
            response += buffer[0..<count]
        }
        return .noAnswer
    }

    /// The status code and whether the whole response (headers + Content-Length body) is here.
    private static func parse(_ bytes: [UInt8]) -> (Int, Bool)? {
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: bytes[..<end.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let statusLine = lines.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            return nil
        }
        let length = lines.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        return (status, bytes.count - end.upperBound >= length)
    }
}
