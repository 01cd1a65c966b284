import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TallyLog
import TallyIngest
@testable import TallyServer

#if canImport(Glibc)
import Glibc
#endif

/// The event-loop fast path for increments, over raw sockets: what an HTTP client library
/// would not do (pipelining, chunked bodies, `Connection: close`), and that the fast path
/// is the one answering.
@Suite struct FastPathTests {
    let key = UUID().uuidString.lowercased()

    private func increment(_ value: Int, extraHeaders: String = "") -> String {
        let body = #"{"key":"\#(key)","value":\#(value)}"#
        return "POST /increment HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.utf8.count)\r\n\(extraHeaders)\r\n\(body)"
    }

    @Test func sequentialIncrementsAreAnsweredOnTheEventLoop() async throws {
        let server = try await TestServer()
        try await server.app.test(.live) { client in
            for value in 1...3 {
                try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, Int64(value))) {
                    #expect($0.status == .ok)
                    #expect($0.headers[.date] != nil)
                }
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("tally_http_increments_on_event_loop_total 3"), "\(text)")
                #expect(text.contains(#"tally_http_requests_total{route="/increment",status="200"} 3"#))
                #expect(text.contains("tally_increment_ack_seconds_count 3"))
            }
        }
        #expect(try server.loggedRecords().map(\.value) == [1, 2, 3])
        await server.node.log.close()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        // With a slow disk, a routed request that did not wait behind the increment before it
        // would be answered first.
        let server = try await TestServer(slowDiskMicroseconds: 200_000)
        let answers = try await server.app.test(.live) { client in
            let requests = increment(1) + "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + increment(2)
                + "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n" + increment(3) + increment(4) + "POST /increment HTTP/1.1\r\n"
                + "Host: t\r\nContent-Length: 3\r\n\r\nbad" + increment(5, extraHeaders: "Connection: close\r\n")
            return try await RawConnection(port: client.port!).exchange(requests)
        }
        let statuses = RawConnection.statusLines(in: answers)
        #expect(statuses == ["200", "200", "200", "404", "200", "200", "400", "200"], "\(answers)")
        let bodies = RawConnection.jsonBodies(in: answers)
        #expect(bodies.compactMap { $0["lsn"] as? Int } == [1, 2, 3, 4, 5])
        #expect(bodies[1]["status"] as? String == "alive")
        #expect(try server.loggedRecords().map(\.value) == [1, 2, 3, 4, 5])
        await server.node.log.close()
    }

    @Test func aMalformedRequestBehindAnIncrementIsRefusedAfterIt() async throws {
        // Hummingbird answers what NIO's decoder cannot parse with 400 and closes; that answer
        // must not overtake the durable increment before it (slow disk: it would).
        let server = try await TestServer(slowDiskMicroseconds: 200_000)
        let answers = try await server.app.test(.live) { client in
            try await RawConnection(port: client.port!).exchange(increment(1) + "NOT HTTP AT ALL\r\n\r\n")
        }
        #expect(RawConnection.statusLines(in: answers) == ["200", "400"], "\(answers)")
        #expect(try server.loggedRecords().map(\.value) == [1])
        await server.node.log.close()
    }

    @Test func aClientThatHalfClosesStillHearsItsAnswers() async throws {
        let server = try await TestServer(slowDiskMicroseconds: 100_000)
        let answers = try await server.app.test(.live) { client in
            try await RawConnection(port: client.port!).exchange(
                increment(1) + increment(2) + "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + increment(3), halfClose: true)
        }
        #expect(RawConnection.statusLines(in: answers) == ["200", "200", "200", "200"], "\(answers)")
        #expect(try server.loggedRecords().map(\.value) == [1, 2, 3])
        await server.node.log.close()
    }

    @Test func manyPipelinedRefusalsAreAnsweredInOrder() async throws {
        let server = try await TestServer()
        let count = 500
        let answers = try await server.app.test(.live) { client in
            try await RawConnection(port: client.port!).exchange(
                increment(1) + String(repeating: "POST /increment HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", count: count)
                    + increment(2, extraHeaders: "Connection: close\r\n"))
        }
        #expect(RawConnection.statusLines(in: answers) == ["200"] + Array(repeating: "400", count: count) + ["200"])
        #expect(try server.loggedRecords().map(\.value) == [1, 2])
        await server.node.log.close()
    }

    @Test func twoAuthorizationHeadersAreRefusedOnBothPaths() async throws {
        let server = try await TestServer { $0.apiKeys = try? APIKeys(keys: ["s3cret-key"]) }
        let twice = "Authorization: Bearer s3cret-key\r\nAuthorization: Bearer s3cret-key\r\n"
        let answers = try await server.app.test(.live) { client in
            try await RawConnection(port: client.port!).exchange(
                increment(1, extraHeaders: twice) + increment(2, extraHeaders: "Authorization: Bearer s3cret-key\r\nConnection: close\r\n"))
        }
        #expect(RawConnection.statusLines(in: answers) == ["401", "200"], "\(answers)")
        #expect(try server.loggedRecords().map(\.value) == [2])
        await server.node.log.close()
    }

    @Test func aChunkedBodyOverTheLimitGets413AndStoresNothing() async throws {
        let server = try await TestServer { $0.maxBodyBytes = 64 }
        let answers = try await server.app.test(.live) { client in
            let chunk = String(repeating: " ", count: 40)
            let chunked = "POST /increment HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "28\r\n\(chunk)\r\n28\r\n\(chunk)\r\n0\r\n\r\n"
            return try await RawConnection(port: client.port!).exchange(chunked + increment(7, extraHeaders: "Connection: close\r\n"))
        }
        #expect(RawConnection.statusLines(in: answers) == ["413", "200"], "\(answers)")
        #expect(try server.loggedRecords().map(\.value) == [7])
        await server.node.log.close()
    }

    @Test func anHTTP10ClientGetsItsAnswerAndAClosedConnection() async throws {
        let server = try await TestServer()
        let body = #"{"key":"\#(key)","value":2}"#
        let (answers, elapsed) = try await server.app.test(.live) { client in
            // Timed from the request on: the server's start-up is not part of it.
            let started = ContinuousClock.now
            let answers = try await RawConnection(port: client.port!).exchange(
                "POST /increment HTTP/1.0\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            return (answers, ContinuousClock.now - started)
        }
        #expect(answers.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(answers)")
        #expect(answers.contains("Content-Length: 9\r\n") && answers.hasSuffix(#"{"lsn":1}"#))
        #expect(elapsed < .seconds(5), "closed by the server, not by the client's 10 s timeout")
        #expect(try server.loggedRecords().map(\.value) == [2])
        await server.node.log.close()
    }

    @Test func anIncrementBehindARoutedConnectionCloseIsNeitherAnsweredNorStored() async throws {
        let server = try await TestServer()
        let answers = try await server.app.test(.live) { client in
            // The routed request asks to close: whatever follows it can never be answered,
            // so it must not be appended either (its client would retry and count twice).
            try await RawConnection(port: client.port!).exchange(
                "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" + increment(1) + increment(2))
        }
        #expect(RawConnection.statusLines(in: answers) == ["200"], "\(answers)")
        try await Task.sleep(for: .milliseconds(200))  // an append, had one started, would be durable by now
        #expect(try server.loggedRecords().isEmpty)
        await server.node.log.close()
    }

    @Test func connectionCloseClosesAfterTheAnswer() async throws {
        let server = try await TestServer()
        let answers = try await server.app.test(.live) { client in
            // Anything after the closing request is never answered.
            try await RawConnection(port: client.port!).exchange(increment(1, extraHeaders: "Connection: close\r\n") + increment(2))
        }
        #expect(RawConnection.statusLines(in: answers) == ["200"])
        #expect(try server.loggedRecords().map(\.value) == [1])
        await server.node.log.close()
    }
}

/// A TCP client that sends everything at once and reads until the server closes. The
/// blocking socket calls run on a thread of their own: on the cooperative pool they would
/// starve the server tasks they wait for.
struct RawConnection: Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// Sends `requests`, returns all the server wrote before closing (or before 10 s of silence).
    /// - Parameter halfClose: send FIN after the requests (`shutdown(SHUT_WR)`), as `nc -N` does.
    func exchange(_ requests: String, halfClose: Bool = false) async throws -> String {
        try await exchangeNotingClose(requests, halfClose: halfClose).answers
    }

    /// `exchange`, and whether the server closed the connection (rather than the client
    /// giving up after 10 s of silence).
    func exchangeNotingClose(_ requests: String, halfClose: Bool = false) async throws -> (answers: String, closedByServer: Bool) {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try exchangeBlocking(requests, halfClose: halfClose) }) }.start()
        }
    }

    private func exchangeBlocking(_ requests: String, halfClose: Bool) throws -> (answers: String, closedByServer: Bool) {
        defer { close(fd) }
        let bytes = Array(requests.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            sent += n
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var closedByServer = false
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                closedByServer = n == 0 || errno == ECONNRESET
                break
            }
            received.append(contentsOf: buffer[0..<n])
        }
        return (String(decoding: received, as: UTF8.self), closedByServer)
    }

    /// Reads until the server closes (or 10 s of silence); sends nothing.
    func readUntilClosed() async throws -> String {
        try await exchange("")
    }

    static func statusLines(in answers: String) -> [String] {
        answers.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
    }

    static func jsonBodies(in answers: String) -> [[String: Any]] {
        answers.components(separatedBy: "HTTP/1.1 ").dropFirst().map { answer in
            guard let start = answer.range(of: "\r\n\r\n") else { return [:] }
            return json(ByteBuffer(string: String(answer[start.upperBound...])))
        }
    }
}

/// The fast path keeps the connection's idle timeout (Hummingbird's own is off).
@Suite struct IdleConnectionTests {
    @Test func idleConnectionsAreClosedAfterTheTimeout() async throws {
        let server = try await TestServer { $0.idleTimeout = .seconds(1) }
        let key = UUID().uuidString
        let (silent, afterOne) = try await server.app.test(.live) { client in
            let clock = ContinuousClock()
            // A connection that never sends, and one that goes quiet after one increment.
            let silent = try await clock.measure {
                let (_, closed) = try await RawConnection(port: client.port!).exchangeNotingClose("")
                #expect(closed, "the server closed the silent connection (not the client's 10 s receive timeout)")
            }
            let body = #"{"key":"\#(key)","value":1}"#
            let afterOne = try await clock.measure {
                let (answers, closed) = try await RawConnection(port: client.port!).exchangeNotingClose(
                    "POST /increment HTTP/1.1\r\nHost: t\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                #expect(RawConnection.statusLines(in: answers) == ["200"])
                #expect(closed, "the server closed the quiet connection")
            }
            return (silent, afterOne)
        }
        // Not before the idle timeout (1 s); when, depends on how busy the machine is.
        #expect(silent >= .milliseconds(900), "\(silent)")
        #expect(afterOne >= .milliseconds(900), "\(afterOne)")
        await server.node.log.close()
    }
}
