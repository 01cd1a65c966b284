import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Synchronization
import Testing
import TallyProtos

/// The gRPC front of the real binary, killed with -9 in the middle of a stream: every
/// acknowledged request is counted, nothing is counted that was not sent.
@Suite(.serialized) struct EndToEndGRPCTests {
    @Test func killNineMidStreamCountsEveryAckedRequestAndNothingUnsent() async throws {
        let data = TemporaryDirectory()
        let keys = (0..<8).map { _ in UUID().uuidString.lowercased() }
        let grpcPort = Daemon.freePort()
        let daemon = try Daemon(dataDirectory: data.path + "/node", extraArguments: ["--grpc-listen", "127.0.0.1:\(grpcPort)"])
        try await daemon.waitUntilServing()
        try await daemon.waitForFirstCheckpoint()

        let sent = Mutex<[String: Int]>([:])
        let acked = Mutex<[String: Int]>([:])
        let streaming = Task {
            try await withGRPCClient(
                transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: grpcPort), transportSecurity: .plaintext)
            ) { client in
                let tally = Tally_V1_Tally.Client(wrapping: client)
                // The values of each request, by its request_id, so that an ack can be booked.
                let requests = Mutex<[String: [String: Int]]>([:])
                try await tally.increment { writer in
                    for index in 0..<1_000_000 {
                        var request = Tally_V1_IncrementRequest()
                        var values: [String: Int] = [:]
                        for _ in 0..<50 {
                            let key = keys.randomElement()!
                            let value = Int.random(in: 1...1_000)
                            request.increments.append(.with { $0.key = key; $0.value = Int64(value) })
                            values[key, default: 0] += value
                        }
                        request.requestID = "r\(index)"
                        requests.withLock { $0[request.requestID] = values }
                        try await writer.write(request)
                        sent.withLock { $0.merge(values, uniquingKeysWith: +) }
                    }
                } onResponse: { response in
                    for try await ack in response.messages {
                        let values = requests.withLock { $0[ack.requestID] } ?? [:]
                        acked.withLock { $0.merge(values, uniquingKeysWith: +) }
                    }
                }
            }
        }
        // Crash mid-stream: once acks flow (a loaded machine may take a while to start).
        for _ in 0..<200 where acked.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(Int.random(in: 100...600)))
        try await daemon.crash()
        _ = try? await streaming.value
        let ackedTotals = acked.withLock { $0 }
        let sentTotals = sent.withLock { $0 }
        #expect(ackedTotals.values.reduce(0, +) > 0, "the stream made progress before the crash")

        let restarted = try Daemon(dataDirectory: data.path + "/node", port: daemon.port)
        try await restarted.waitUntilServing()
        try await restarted.waitForFirstCheckpoint()
        kill(restarted.pid, SIGTERM)
        #expect(try await restarted.waitForExit(seconds: 15) == 0)
        let totals = try Daemon.totals(keys)
        for key in keys {
            let total = totals[key] ?? 0
            #expect((ackedTotals[key] ?? 0) <= total && total <= (sentTotals[key] ?? 0),
                    "key \(key): acked \(ackedTotals[key] ?? 0) ≤ total \(total) ≤ sent \(sentTotals[key] ?? 0)")
        }
    }
}
