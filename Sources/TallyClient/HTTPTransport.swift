import AsyncHTTPClient
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import Synchronization

/// Batches as `POST /increments` (NDJSON) with `Idempotency-Key: <batch id>`, over
/// async-http-client's pooled keep-alive connections; names as `PUT /keys/{key}`.
///
/// Status codes map onto ``DeliveryOutcome``: 200 delivered (a replayed answer too: the
/// daemon counted the first attempt); 503, 429, 500, 502, 504 and every connection error or
/// timeout are retried with the same id; any other status is a refusal that no retry can fix.
public final class HTTPTransport: TallyTransport {
    /// Made on first use, so that a client that never sends owns no connection pool (an
    /// async-http-client must be shut down before it is released).
    private let client = Mutex<HTTPClient?>(nil)
    private let shutDown = Atomic(false)
    private let configuration: HTTPClient.Configuration
    private let incrementsURL: String
    private let baseURL: String
    private let authorization: String?
    /// Bounds what is read of an answer: they are a few hundred bytes.
    static let maxAnswerBytes = 64 * 1024

    /// - Parameter url: the daemon's HTTP address, e.g. `http://127.0.0.1:8080`.
    public init(url: String, apiKey: String? = nil) throws {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        guard trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://") else {
            throw TallyClientError.invalidConfiguration("url must start with http:// or https://, got \(url)")
        }
        baseURL = trimmed
        incrementsURL = trimmed + "/increments"
        authorization = apiKey.map { "Bearer \($0)" }
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2))
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 8)
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        self.configuration = configuration
    }

    private func httpClient() throws -> HTTPClient {
        try client.withLock { client in
            if let client { return client }
            guard !shutDown.load(ordering: .relaxed) else { throw TallyClientError.shutDown }
            let made = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            client = made
            return made
        }
    }

    public func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome {
        var request = HTTPClientRequest(url: incrementsURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
        request.headers.add(name: "Idempotency-Key", value: batch.id)
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(NDJSONBody.encode(batch))
        return try await exchange(request, timeout: timeout)
    }

    /// `PUT /keys/{key}` with `{"name": …}`.
    func register(name: String, key: UUID, timeout: Duration) async throws -> DeliveryOutcome {
        var request = HTTPClientRequest(url: baseURL + "/keys/" + key.uuidString.lowercased())
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/json")
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(ByteBuffer(string: #"{"name":"# + JSONString.quote(name) + "}"))
        return try await exchange(request, timeout: timeout)
    }

    private func exchange(_ request: HTTPClientRequest, timeout: Duration) async throws -> DeliveryOutcome {
        let deadline = NIODeadline.now() + .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                          + timeout.components.attoseconds / 1_000_000_000)
        let response = try await httpClient().execute(request, deadline: deadline)
        let body = try await response.body.collect(upTo: Self.maxAnswerBytes)
        let status = response.status.code
        switch status {
        case 200..<300:
            return .delivered
        case 429, 500, 502, 503, 504:
            let after = response.headers.first(name: "Retry-After").flatMap { Int($0) }.map { Duration.seconds($0) }
            return .retry(reason: "HTTP \(status)", after: after)
        default:
            return .refused(reason: "HTTP \(status): \(String(buffer: body).prefix(300))")
        }
    }

    public func shutdown() async {
        let made = client.withLock { client in
            shutDown.store(true, ordering: .relaxed)
            defer { client = nil }
            return client
        }
        try? await made?.shutdown()
    }
}

/// JSON string literals for the few bodies the client writes.
enum JSONString {
    static func quote(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                quoted += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: quoted.unicodeScalars.append(scalar)
            }
        }
        return quoted + "\""
    }
}
