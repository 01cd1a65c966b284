import Foundation

/// Bearer tokens that may call the API, loaded from `--api-keys-file`.
///
/// The file holds one key per line; blank lines and lines starting with `#` are ignored,
/// surrounding whitespace is trimmed. Comparison takes time independent of where a
/// candidate differs and of which key (if any) matches. Keys are never printed: the type's
/// description shows only how many there are.
public struct APIKeys: Sendable, CustomStringConvertible {
    private let keys: [[UInt8]]

    public init(keys: [String]) throws {
        let cleaned = keys.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !cleaned.isEmpty else { throw APIKeysError.empty }
        self.keys = cleaned.map { Array($0.utf8) }
    }

    public init(contentsOfFile path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw APIKeysError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        do {
            try self.init(keys: text.split(whereSeparator: \.isNewline).map(String.init))
        } catch {
            throw APIKeysError.noKeys(path: path)
        }
    }

    /// Whether an `Authorization` header value is `Bearer <one of the keys>`.
    public func authorizes(authorizationHeader: String?) -> Bool {
        guard let header = authorizationHeader else { return false }
        let prefix = "Bearer "
        guard header.count > prefix.count, header.prefix(prefix.count).lowercased() == prefix.lowercased() else { return false }
        let candidate = Array(header.utf8.dropFirst(prefix.utf8.count))
        var matched: UInt8 = 0
        for key in keys { matched |= Self.constantTimeEqual(candidate, key) }
        return matched == 1
    }

    /// 1 when equal, 0 otherwise, looking at every byte of the longer input.
    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> UInt8 {
        var difference: UInt8 = a.count == b.count ? 0 : 1  // lengths may leak; contents may not
        let length = max(a.count, b.count)
        for index in 0..<length {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 ? 1 : 0
    }

    public var description: String { "APIKeys(\(keys.count) keys, redacted)" }
}

public enum APIKeysError: Error, CustomStringConvertible {
    case empty
    case noKeys(path: String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .empty: "no API keys given"
        case .noKeys(let path): "\(path) holds no API keys (one per line; # starts a comment)"
        case .unreadable(let path, let reason): "cannot read the API keys file \(path): \(reason)"
        }
    }
}
