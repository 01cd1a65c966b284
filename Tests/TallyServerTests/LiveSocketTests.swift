import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import TallyLog
@testable import TallyServer

/// One request per route over a real TCP socket.
@Suite struct LiveSocketTests {
    @Test func everyRouteAnswersOverARealSocket() async throws {
        let server = try await TestServer()
        let key = UUID().uuidString
        try await server.app.test(.live) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(key, 9)) { response in
                #expect(response.status == .ok)
                #expect(json(response.body)["lsn"] as? Int == 1)
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await server.node.checkpointer.checkpoint()
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(json(response.body)["status"] as? String == "ready")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.contains(#"tally_http_requests_total{route="/increment",status="200"} 1"#))
                #expect(text.contains("tally_checkpoint_lsn 1"))
                #expect(text.contains("tally_log_fdatasync_seconds_count 1"))
            }
        }
        await server.node.log.close()
    }

    @Test func metricsPassPromtool() async throws {
        let server = try await TestServer()
        let text = try await server.app.test(.live) { client in
            try await client.execute(uri: "/increment", method: .post, body: incrementBody(UUID().uuidString, 1)) { _ in }
            return try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
        }
        await server.node.log.close()
        let file = server.directory.path + "/metrics.txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "promtool check metrics < \(file) > \(file).out 2>&1"]
        try process.run()
        process.waitUntilExit()
        let output = (try? String(contentsOfFile: file + ".out", encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "promtool: \(output)")
    }
}
