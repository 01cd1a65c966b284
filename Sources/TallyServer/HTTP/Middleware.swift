import Hummingbird
import NIOCore
import TallyIngest

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
        APIRoutes.route(of: path)?.metric ?? .other
    }
}

/// 405 with `Allow` for a known path asked with a method it does not take (404 stays for
/// unknown paths), after the gate so that it tells an unauthenticated client nothing.
struct AllowedMethodsMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let route = APIRoutes.route(of: request.uri.path), !route.methods.contains(request.method) {
            let allow = route.methods.map(\.rawValue).joined(separator: ", ")
            return JSONResponse.error(.methodNotAllowed, "use \(allow) for \(route.template)", headers: [.allow: allow])
        }
        return try await next(request, context)
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

    /// Balancers' health checks need no key and are never limited; Prometheus' scrapes keep
    /// the key but are never limited.
    static func exemption(_ path: String) -> RequestGate.Exemption {
        switch path {
        case "/healthz", "/readyz": .probe
        case "/metrics": .scrape
        default: .none
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let forwardedFor = request.headers.first { $0.name.canonicalName == "x-forwarded-for" }?.value
        if let refusal = gate.refusal(exemption: Self.exemption(request.uri.path), authorization: request.headers[.authorization],
                                      forwardedFor: forwardedFor, peer: { context.peerAddress }) {
            return JSONResponse.make(.refusal(refusal))
        }
        return try await next(request, context)
    }
}
