import Hummingbird
import Logging
import ServiceLifecycle
import TallyClient
import TallyRequestCounter

/// A small web application that counts its requests in Tally: a few routes with path
/// parameters, and `TallyRequestCounter` in front of them. What a real service adds is one
/// client, one middleware, and the client in its ServiceGroup so that SIGTERM flushes it.
enum ExampleApp {
    static func router(counter: TallyClient?) -> Router<BasicRequestContext> {
        let router = Router()
        if let counter {
            // First, so that it sees every request, also those answered by later middleware.
            router.add(middleware: TallyRequestCounter(client: counter))
        }
        router.get("/") { _, _ in "Tally example: try /users/42\n" }
        router.get("/users/{id}") { _, context in
            let id = try context.parameters.require("id", as: Int.self)
            return #"{"id":\#(id),"name":"user \#(id)"}"#
        }
        router.get("/users/{id}/orders") { _, context in
            let id = try context.parameters.require("id", as: Int.self)
            return #"{"user":\#(id),"orders":[]}"#
        }
        router.post("/users") { _, _ in Response(status: .created) }
        router.delete("/users/{id}") { _, _ in Response(status: .noContent) }
        return router
    }

    /// The application and, when counting, the client, as one ServiceGroup: on SIGTERM the
    /// server stops taking requests first, then the client delivers what is queued.
    static func makeGroup(host: String, port: Int, tallyURL: String?, logger: Logger,
                          onListening: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> ServiceGroup {
        let counter = try tallyURL.map { try TallyClient(configuration: .init(url: $0), logger: logger) }
        let app = Application(
            router: router(counter: counter),
            configuration: .init(address: .hostname(host, port: port), serverName: "tally-example"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
        // First in the list: a ServiceGroup shuts services down in reverse order, so the
        // client drains after the server has answered its last request.
        if let counter { services.insert(.init(service: counter), at: 0) }
        return ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                 logger: logger))
    }
}
