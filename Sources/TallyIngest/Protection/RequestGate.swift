/// Authentication, then rate limiting: the checks every request meets before its route,
/// on either path (Hummingbird middleware or the event-loop fast path for increments).
struct RequestGate: Sendable {
    /// nil: no API keys configured, every request is authorized.
    let keys: APIKeys?
    /// nil: rate limiting is off.
    let limiter: RateLimiter?
    let addresses: ClientAddress
    let metrics: ServerMetrics

    init(configuration: ServerConfiguration, metrics: ServerMetrics) {
        keys = configuration.apiKeys
        limiter = configuration.rateLimitPerSecond.map {
            RateLimiter(ratePerSecond: $0, burst: configuration.rateBurst)
        }
        addresses = ClientAddress(trustedProxies: configuration.trustedProxies)
        self.metrics = metrics
    }

    /// A balancer's health checks: they carry no key (a balancer cannot keep one secret
    /// better than the network does), and they reveal nothing but whether to send traffic.
    static func isProbe(_ path: String) -> Bool { path == "/healthz" || path == "/readyz" }

    /// Probes and Prometheus' scrapes are never rate limited: behind a balancer without
    /// `--trusted-proxy` they share the clients' address, and a busy node must not look dead.
    static func isOperations(_ path: String) -> Bool { isProbe(path) || path == "/metrics" }

    /// Whether anything is checked at all (when not, callers skip gathering the inputs).
    var isOpen: Bool { keys == nil && limiter == nil }

    /// nil when the request may go on; otherwise the answer that refuses it.
    /// - Parameters:
    ///   - peer: the TCP peer's address; only evaluated when rate limiting is on.
    func refusal(path: String, authorization: String?, forwardedFor: String?,
                 peer: () -> String?) -> Answer? {
        if let keys, !Self.isProbe(path), !keys.authorizes(authorizationHeader: authorization) {
            return .unauthorized
        }
        if let limiter, !Self.isOperations(path) {
            let client = addresses.client(peer: peer(), forwardedFor: forwardedFor)
            if case .limited(let seconds) = limiter.admit(client: client) {
                metrics.recordRateLimited()
                return .rateLimited(retryAfterSeconds: seconds)
            }
        }
        return nil
    }
}
