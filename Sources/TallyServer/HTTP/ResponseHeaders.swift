import HTTPTypes
import NIOHTTP1

/// The headers of the fast path's answers. Those of acknowledgements are built once a second
/// per connection (their only variable part is the body length: 8 bytes plus the LSN's
/// digits), so the common answer costs no header-list allocation.
struct ResponseHeaders {
    private let serverName: String
    private var date = ""
    /// Acknowledgement headers by body length, for the current `date`.
    private var acknowledgements: [Int: HTTPHeaders] = [:]

    init(serverName: String) {
        self.serverName = serverName
    }

    mutating func headers(for answer: Answer, bodySizeBytes: Int) -> HTTPHeaders {
        let now = HTTPDate.now
        if now != date {
            date = now
            acknowledgements.removeAll(keepingCapacity: true)
        }
        if answer.status == .ok && answer.headers.isEmpty {
            if let cached = acknowledgements[bodySizeBytes] { return cached }
            let headers = build(bodySizeBytes: bodySizeBytes)
            acknowledgements[bodySizeBytes] = headers
            return headers
        }
        var headers = build(bodySizeBytes: bodySizeBytes)
        for field in answer.headers { headers.add(name: field.name.rawName, value: field.value) }
        return headers
    }

    private func build(bodySizeBytes: Int) -> HTTPHeaders {
        ["Content-Type": "application/json", "Content-Length": String(bodySizeBytes), "Date": date, "Server": serverName]
    }
}
