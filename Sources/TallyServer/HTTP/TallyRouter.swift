import Hummingbird
import TallyCore
import TallyLog

/// The routes and middleware of the API, in the order a request meets them:
/// metrics → JSON errors → auth → rate limit → route.
public enum TallyRouter {
    public static func build(node: CountingNode, metrics: ServerMetrics, configuration: ServerConfiguration)
        -> Router<TallyRequestContext>
    {
        let router = Router(context: TallyRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        router.add(middleware: JSONErrorMiddleware())
        if let keys = configuration.apiKeys {
            router.add(middleware: AuthMiddleware(keys: keys))
        }
        if let rate = configuration.rateLimitPerSecond {
            router.add(middleware: RateLimitMiddleware(
                limiter: RateLimiter(ratePerSecond: rate, burst: configuration.rateBurst),
                addresses: ClientAddress(trustedProxies: configuration.trustedProxies), metrics: metrics))
        }

        let increment = IncrementRoute(log: node.log, metrics: metrics, maxBodyBytes: configuration.maxBodyBytes)
        router.post("/increment") { request, context in await increment.handle(request, context: context) }
        for method in [HTTPRequest.Method.get, .put, .delete, .patch, .head, .options] {
            router.on("/increment", method: method) { _, _ in
                JSONResponse.error(.methodNotAllowed, "use POST for /increment", headers: [.allow: "POST"])
            }
        }
        let status = StatusRoutes(log: node.log, checkpointer: node.checkpointer, metrics: metrics)
        router.get("/healthz") { _, _ in status.health() }
        router.get("/readyz") { _, _ in status.readiness() }
        router.get("/metrics") { _, _ in status.prometheus() }
        if configuration.benchRoutes {
            // The HTTP ceiling for benchmarks: same server, same parsing of the request line, no work.
            router.post("/bench/ceiling") { _, _ in JSONResponse.make(.ok, #"{"lsn":0}"#) }
        }
        return router
    }
}
