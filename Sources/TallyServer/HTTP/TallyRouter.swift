import Hummingbird
import TallyCore
import TallyIngest
import TallyLog

/// The routes and middleware of the API, in the order a request meets them:
/// metrics → JSON errors → API key and rate limit (`RequestGate`) → method check → route.
/// (`IngestChannelHandler` answers most ingest before it reaches the router, with the same
/// gate and the same answers.)
enum TallyRouter {
    static func build(node: CountingNode, ingest: Ingest, metrics: ServerMetrics, gate: RequestGate,
                      intake: IncrementIntake, counts: CountRoutes, names: KeyNameRoute, drain: DrainSignal, benchRoutes: Bool)
        -> Router<TallyRequestContext>
    {
        let router = Router(context: TallyRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        router.add(middleware: JSONErrorMiddleware())
        if !gate.isOpen {
            router.add(middleware: GateMiddleware(gate: gate))
        }
        router.add(middleware: AllowedMethodsMiddleware())

        let increment = IngestRoute(ingest: ingest, metrics: metrics, intake: intake, kind: .single)
        router.post("/increment") { request, context in await increment.handle(request, context: context) }
        let increments = IngestRoute(ingest: ingest, metrics: metrics, intake: intake, kind: .bulk)
        router.post("/increments") { request, context in await increments.handle(request, context: context) }
        router.get("/counts/{key}") { request, context in await counts.count(request, context: context) }
        router.get("/counts/{key}/daily") { request, context in await counts.daily(request, context: context) }
        router.get("/counts/{key}/period") { request, context in await counts.period(request, context: context) }
        router.get("/reports/daily") { request, context in await counts.dailyReport(request, context: context) }
        router.put("/keys/{key}") { request, context in await names.put(request, context: context) }
        router.get("/openapi.yaml") { _, _ in OpenAPIDocument.response() }

        let status = StatusRoutes(log: node.log, checkpointer: node.checkpointer, metrics: metrics, drain: drain)
        router.get("/healthz") { _, _ in status.health() }
        router.get("/readyz") { _, _ in status.readiness() }
        router.get("/metrics") { _, _ in status.prometheus() }
        if benchRoutes {
            // The HTTP ceiling for benchmarks: same server, same parsing of the request line, no work.
            router.post("/bench/ceiling") { _, _ in JSONResponse.make(.ok, #"{"lsn":0}"#) }
        }
        return router
    }
}
