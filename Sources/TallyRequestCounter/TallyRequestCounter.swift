#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Hummingbird
import Synchronization
import TallyClient

/// Hummingbird middleware that counts every request in Tally under `"METHOD
/// route-template"` — `"GET /users/{id}"`, never the raw path `/users/42`, so the number of
/// counters stays the number of routes however many ids clients send.
///
/// Each request is one ``TallyClient/increment(key:by:)`` (queued, never waiting for the
/// network) on the key ``TallyKeyName/key(for:)`` of that name; the first request of a
/// route registers the name with the daemon, so reports show routes, not UUIDs. A request
/// that no route matched is counted as `"METHOD (unmatched)"`; a method outside the
/// standard ones as `OTHER`, so neither paths nor methods a client makes up add counters.
///
/// Add it first, so that it also counts requests other middleware answers:
///
/// ```swift
/// router.add(middleware: TallyRequestCounter(client: tally))
/// ```
public struct TallyRequestCounter<Context: RequestContext>: RouterMiddleware {
    public typealias Input = Request
    public typealias Output = Response

    private let client: TallyClient
    private let keys: RouteKeys

    public init(client: TallyClient) {
        self.client = client
        keys = RouteKeys(client: client)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            await count(request.method, context.endpointPath)
            return response
        } catch {
            await count(request.method, context.endpointPath)
            throw error
        }
    }

    private func count(_ method: HTTPRequest.Method, _ endpoint: String?) async {
        // Hummingbird names an unmatched request's endpoint "NotFound".
        let template = endpoint.flatMap { $0 == "NotFound" ? nil : $0 } ?? Self.unmatched
        await client.increment(key: keys.key(method: method, template: template))
    }

    /// The template of requests no route matched.
    public static var unmatched: String { "(unmatched)" }
}

/// The key of each (method, template) pair, derived and registered on first use and then
/// looked up: a SHA-1 and a name registration per request would cost more than the count.
final class RouteKeys: Sendable {
    private let client: TallyClient
    private let keys = Mutex<[String: [HTTPRequest.Method: UUIDBox]]>([:])
    /// Methods counted by name; any other is `OTHER` (methods are free text in HTTP).
    static let namedMethods: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .delete, .patch, .options, .connect, .trace]

    init(client: TallyClient) {
        self.client = client
    }

    func key(method: HTTPRequest.Method, template: String) -> UUID {
        let method = Self.namedMethods.contains(method) ? method : HTTPRequest.Method("OTHER")!
        if let known = keys.withLock({ $0[template]?[method] }) { return known.uuid }
        let key = client.register(name: TallyKeyName.route(method: method.rawValue, template: template))
        keys.withLock { $0[template, default: [:]][method] = UUIDBox(uuid: key) }
        return key
    }
}

/// A UUID stored in the cache (keeps the dictionary's value type trivially Sendable).
struct UUIDBox: Sendable {
    let uuid: UUID
}
