/// Which address a request is counted against for rate limiting.
///
/// The peer's address, unless the peer is one of the trusted proxies: then the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends the
/// address it saw, so the rightmost untrusted entry is the first one nobody could forge).
/// Exact IP addresses only; no CIDR ranges.
public struct ClientAddress: Sendable {
    public let trustedProxies: Set<String>

    public init(trustedProxies: Set<String>) {
        self.trustedProxies = trustedProxies
    }

    public func client(peer: String?, forwardedFor: String?) -> String {
        let peer = peer ?? "unknown"
        guard trustedProxies.contains(peer), let forwardedFor else { return peer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return hops.reversed().first { !$0.isEmpty && !trustedProxies.contains($0) } ?? peer
    }
}

import Foundation
