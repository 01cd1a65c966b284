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
        case "/increment": .increment
        case "/healthz": .healthz
        case "/readyz": .readyz
        case "/metrics": .metrics
        default: .other
        }
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

/// `Authorization: Bearer <key>` on every route but `/healthz`, when keys are configured.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let keys: APIKeys

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/healthz" || keys.authorizes(authorizationHeader: request.headers[.authorization]) {
            return try await next(request, context)
        }
        return JSONResponse.error(.unauthorized, "a valid API key is required: Authorization: Bearer <key>",
                                  headers: [.wwwAuthenticate: "Bearer"])
    }
}

/// Token bucket per client address; 429 with `Retry-After` past the limit.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = TallyRequestContext
    let limiter: RateLimiter
    let addresses: ClientAddress
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let forwardedFor = request.headers.first { $0.name.canonicalName == "x-forwarded-for" }?.value
        let client = addresses.client(peer: context.peerAddress, forwardedFor: forwardedFor)
        switch limiter.admit(client: client) {
        case .admitted:
            return try await next(request, context)
        case .limited(let seconds):
            metrics.recordRateLimited()
            return JSONResponse.retryLater(.tooManyRequests, "rate limit exceeded; retry after \(seconds) s", afterSeconds: seconds)
        }
    }
}
