import HTTPTypes

/// The header fields of the fast path's answers, built once a second per connection for
/// acknowledgements (their only variable part is the body length, 8 bytes plus the LSN's
/// digits) so that the common answer costs no field-list allocation.
struct ResponseFields {
    private let serverName: String
    private var date = ""
    /// Acknowledgement fields by body length, for the current `date`.
    private var acknowledgements: [Int: HTTPFields] = [:]

    init(serverName: String) {
        self.serverName = serverName
    }

    mutating func fields(for answer: Answer, bodySizeBytes: Int) -> HTTPFields {
        let now = HTTPDate.now
        if now != date {
            date = now
            acknowledgements.removeAll(keepingCapacity: true)
        }
        if answer.status == .ok && answer.headers.isEmpty {
            if let cached = acknowledgements[bodySizeBytes] { return cached }
            let fields = build(bodySizeBytes: bodySizeBytes)
            acknowledgements[bodySizeBytes] = fields
            return fields
        }
        var fields = build(bodySizeBytes: bodySizeBytes)
        fields.append(contentsOf: answer.headers)
        return fields
    }

    private func build(bodySizeBytes: Int) -> HTTPFields {
        [.contentType: "application/json", .contentLength: String(bodySizeBytes), .date: date, .server: serverName]
    }
}
