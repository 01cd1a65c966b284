/// Authentication, then rate limiting: the checks every request meets before its route,
/// whatever its protocol (the HTTP front's middleware and event-loop fast path, the gRPC
/// front's interceptor), so that one key and one rate limit mean the same everywhere.
public struct RequestGate: Sendable {
    /// Why a request is refused; each front answers it in its own protocol's terms.
    public enum Refusal: Equatable, Sendable {
        /// API keys are configured and the request carries none that is valid.
        case unauthorized
        /// Over the client's rate; a token is back after this many whole seconds.
        case rateLimited(retryAfterSeconds: Int)
    }

    /// Which checks a request is exempt from.
    public enum Exemption: Sendable {
        /// Ordinary requests: key and rate limit.
        case none
        /// A balancer's health checks: they carry no key (a balancer cannot keep one secret
        /// better than the network does) and reveal nothing but whether to send traffic;
        /// never rate limited.
        case probe
        /// Prometheus' scrapes: the key applies, the rate limit does not (behind a balancer
        /// without trusted proxies they share the clients' address, and a busy node must not
        /// look dead).
        case scrape
    }

    /// nil: no API keys configured, every request is authorized.
    public let keys: APIKeys?
    /// nil: rate limiting is off.
    public let limiter: RateLimiter?
    public let addresses: ClientAddress
    private let onRateLimited: @Sendable () -> Void

    public init(keys: APIKeys?, limiter: RateLimiter?, trustedProxies: Set<String>,
                onRateLimited: @escaping @Sendable () -> Void = {}) {
        self.keys = keys
        self.limiter = limiter
        self.addresses = ClientAddress(trustedProxies: trustedProxies)
        self.onRateLimited = onRateLimited
    }

    /// Whether anything is checked at all (when not, callers skip gathering the inputs).
    public var isOpen: Bool { keys == nil && limiter == nil }

    /// nil when the request may go on; otherwise why it is refused.
    /// - Parameters:
    ///   - authorization: the `Authorization` header (HTTP) or metadata value (gRPC).
    ///   - peer: the TCP peer's address; only evaluated when rate limiting is on.
    public func refusal(exemption: Exemption = .none, authorization: String?, forwardedFor: String?,
                        peer: () -> String?) -> Refusal? {
        if let keys, exemption != .probe, !keys.authorizes(authorizationHeader: authorization) {
            return .unauthorized
        }
        if let limiter, exemption == .none {
            let client = addresses.client(peer: peer(), forwardedFor: forwardedFor)
            if case .limited(let seconds) = limiter.admit(client: client) {
                onRateLimited()
                return .rateLimited(retryAfterSeconds: seconds)
            }
        }
        return nil
    }
}
