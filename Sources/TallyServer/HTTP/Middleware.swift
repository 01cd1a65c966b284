import Hummingbird
import NIOCore

/// Counts every response by route and status, outermost so that refusals count too.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let route = Self.route(of: request.uri.path)
        do {
            let response = try await next(request, context)
            metrics.countRequest(route, status: Int(response.status.code))
            return response
        } catch let error as any HTTPResponseError {
            metrics.countRequest(route, status: Int(error.status.code))
            throw error
        } catch {
            metrics.countRequest(route, status: 500)
            throw error
        }
    }

    static func route(of path: String) -> ServerMetrics.Route {
        switch path {
        case "/increment": return .increment
        case "/healthz": return .healthz
        case "/readyz": return .readyz
        case "/metrics": return .metrics
        case "/reports/daily": return .reportsDaily
        case "/openapi.yaml": return .openapi
        default: break
        }
        guard path.hasPrefix("/counts/") else { return .other }
        let rest = path.dropFirst("/counts/".count)
        if !rest.contains("/") { return .counts }
        if rest.hasSuffix("/daily") && rest.split(separator: "/").count == 2 { return .countsDaily }
        if rest.hasSuffix("/period") && rest.split(separator: "/").count == 2 { return .countsPeriod }
        return .other
    }
}

/// Turns the router's own errors (404, 405, …) into the same JSON shape as ours.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let httpError = error as? HTTPError
            return JSONResponse.error(error.status, httpError?.body ?? error.status.reasonPhrase,
                                      headers: httpError?.headers ?? [:])
        }
    }
}

/// API keys and rate limits (`RequestGate`), for the requests Hummingbird routes.
struct GateMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let gate: RequestGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let forwardedFor = request.headers.first { $0.name.canonicalName == "x-forwarded-for" }?.value
        if let refusal = gate.refusal(path: request.uri.path, authorization: request.headers[.authorization],
                                      forwardedFor: forwardedFor, peer: { context.peerAddress }) {
            return JSONResponse.make(refusal)
        }
        return try await next(request, context)
    }
}
