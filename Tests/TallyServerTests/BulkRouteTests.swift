import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TallyCore
import TallyLog
@testable import TallyServer

/// `POST /increments` and `Idempotency-Key`, on both paths (router, and the event-loop fast
/// path over a real socket), against a real log and PostgreSQL.
@Suite struct BulkRouteTests {
    let keys = (0..<3).map { _ in UUID().uuidString.lowercased() }

    private func body(_ values: [Int]) -> ByteBuffer {
        ByteBuffer(string: values.enumerated().map { #"{"key":"\#(keys[$0.offset % keys.count])","value":\#($0.element)}"# }
            .joined(separator: "\n") + "\n")
    }

    @Test(arguments: RouteTests.Path.allCases) func aBulkBodyIsOneDurableAppend(_ path: RouteTests.Path) async throws {
        let server = try await TestServer()
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increments", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: body([1, 2, 3, 4])) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"count":4,"first_lsn":1,"last_lsn":4}"#)
            }
        }
        #expect(try server.loggedRecords().map(\.value) == [1, 2, 3, 4])
        await server.node.log.close()
    }

    @Test(arguments: RouteTests.Path.allCases) func aBadLineRefusesTheWholeBodyAndNamesTheLine(_ path: RouteTests.Path) async throws {
        let server = try await TestServer { $0.maxBatchIncrements = 3 }
        try await server.app.test(path.setup) { client in
            let bad = ByteBuffer(string: #"{"key":"\#(keys[0])","value":1}"# + "\n" + #"{"key":"\#(keys[0])","value":-1}"#)
            try await client.execute(uri: "/increments", method: .post, body: bad) { response in
                #expect(response.status == .badRequest)
                #expect(json(response.body)["line"] as? Int == 2)
                #expect((json(response.body)["error"] as? String)?.hasPrefix("line 2: ") == true)
            }
            try await client.execute(uri: "/increments", method: .post, body: ByteBuffer()) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/increments", method: .post, body: body([1, 1, 1, 1])) { response in
                #expect(response.status == .contentTooLarge, "over --max-batch-increments")
            }
        }
        #expect(try server.loggedRecords().isEmpty, "all or nothing")
        await server.node.log.close()
    }

    @Test(arguments: RouteTests.Path.allCases) func overTheByteLimitIs413(_ path: RouteTests.Path) async throws {
        let server = try await TestServer { $0.maxBatchBytes = 100 }
        try await server.app.test(path.setup) { client in
            try await client.execute(uri: "/increments", method: .post, body: body([1, 2, 3])) { #expect($0.status == .contentTooLarge) }
        }
        #expect(try server.loggedRecords().isEmpty)
        await server.node.log.close()
    }

    @Test(arguments: RouteTests.Path.allCases) func aBodyTheLogRefusesGets503AndIsNotCounted(_ path: RouteTests.Path) async throws {
        let server = try await TestServer()
        try await server.app.test(path.setup) { client in
            await server.node.log.close()
            try await client.execute(uri: "/increments", method: .post, body: body([5, 6])) { response in
                #expect(response.status == .serviceUnavailable && response.headers[.retryAfter] != nil)
            }
        }
        #expect(try server.loggedRecords().isEmpty)
    }

    @Test(arguments: RouteTests.Path.allCases) func aRetryWithTheSameKeyIsAnsweredAsTheFirstAndAnotherBodyConflicts(
        _ path: RouteTests.Path
    ) async throws {
        let server = try await TestServer()
        let key = HTTPField.Name("Idempotency-Key")!
        try await server.app.test(path.setup) { client in
            for attempt in 0..<2 {
                try await client.execute(uri: "/increments", method: .post, headers: [key: "batch-42"], body: body([7, 8])) { response in
                    #expect(String(buffer: response.body) == #"{"count":2,"first_lsn":1,"last_lsn":2}"#)
                    #expect(response.headers[.idempotentReplayed] == (attempt == 0 ? nil : "true"))
                }
            }
            try await client.execute(uri: "/increments", method: .post, headers: [key: "batch-42"], body: body([9])) { response in
                #expect(response.status == .conflict)
            }
            try await client.execute(uri: "/increment", method: .post, headers: [key: "single-1"],
                                     body: incrementBody(keys[0], 3)) { #expect(json($0.body)["lsn"] as? Int == 3) }
            try await client.execute(uri: "/increment", method: .post, headers: [key: "single-1"],
                                     body: incrementBody(keys[0], 3)) { #expect(json($0.body)["lsn"] as? Int == 3) }
            try await client.execute(uri: "/increment", method: .post, headers: [key: String(repeating: "x", count: 65)],
                                     body: incrementBody(keys[0], 3)) { #expect($0.status == .badRequest) }
        }
        #expect(try server.loggedRecords().map(\.value) == [7, 8, 3], "retries and conflicts appended nothing")
        await server.node.log.close()
    }

    @Test func pipelinedBulkRequestsOnOneConnectionAreAnsweredInOrder() async throws {
        let server = try await TestServer(slowDiskMicroseconds: 50_000)
        let answers = try await server.app.test(.live) { client in
            var requests = ""
            for value in 1...3 {
                let text = String(buffer: body([value, value]))
                requests += "POST /increments HTTP/1.1\r\nHost: t\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)"
            }
            requests += "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            return try await RawConnection(port: client.port!).exchange(requests)
        }
        #expect(RawConnection.statusLines(in: answers) == ["200", "200", "200", "200"], "\(answers)")
        #expect(RawConnection.jsonBodies(in: answers).compactMap { $0["first_lsn"] as? Int } == [1, 3, 5])
        #expect(try server.loggedRecords().map(\.value) == [1, 1, 2, 2, 3, 3])
        await server.node.log.close()
    }
}
