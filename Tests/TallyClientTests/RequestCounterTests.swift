import Foundation
import GRPCCore
import GRPCInProcessTransport
import Hummingbird
import HummingbirdTesting
import Testing
import TallyProtos
@testable import TallyClient
import TallyRequestCounter
import TallyRequestCounterGRPC

/// The middleware and the interceptor count through a client: by route template (never the
/// raw path) and by full method name, one increment per request.
@Suite struct RequestCounterTests {
    @Test func theMiddlewareCountsByMethodAndRouteTemplate() async throws {
        let transport = ScriptedTransport()
        let client = try TallyClient(configuration: .test(), transport: transport)
        let running = Task { try await client.run() }
        let router = Router()
        router.add(middleware: TallyRequestCounter(client: client))
        router.get("/users/{id}") { _, _ in "user" }
        router.post("/users") { _, _ in Response(status: .created) }
        router.get("/fails") { _, _ -> String in throw HTTPError(.conflict) }
        let app = Application(router: router)
        try await app.test(.router) { http in
            for id in 1...5 { try await http.execute(uri: "/users/\(id)", method: .get) { #expect($0.status == .ok) } }
            try await http.execute(uri: "/users", method: .post) { #expect($0.status == .created) }
            try await http.execute(uri: "/users/9?x=1", method: .get) { _ in }
            try await http.execute(uri: "/fails", method: .get) { #expect($0.status == .conflict) }
            try await http.execute(uri: "/nowhere/42", method: .get) { #expect($0.status == .notFound) }
            try await http.execute(uri: "/users/1", method: .init("PURGE")!) { _ in }
        }
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete)
        let expected: [String: Int64] = [
            "GET /users/{id}": 6, "POST /users": 1, "GET /fails": 1, "GET (unmatched)": 1, "OTHER (unmatched)": 1,
        ]
        let counted = transport.delivered.withLock { $0 }
        #expect(counted == Dictionary(uniqueKeysWithValues: expected.map { (TallyKeyName.key(for: $0.key), $0.value) }),
                "\(counted)")
    }

    @Test func theInterceptorCountsByFullMethodName() async throws {
        let transport = ScriptedTransport()
        let client = try TallyClient(configuration: .test(), transport: transport)
        let running = Task { try await client.run() }
        let inProcess = InProcessTransport()
        let server = GRPCServer(transport: inProcess.server, services: [AlwaysServing()],
                                interceptors: [TallyRPCCounter(client: client)])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            try await withGRPCClient(transport: inProcess.client) { grpc in
                let health = Grpc_Health_V1_Health.Client(wrapping: grpc)
                for _ in 0..<3 { _ = try await health.check(Grpc_Health_V1_HealthCheckRequest()) }
            }
            server.beginGracefulShutdown()
        }
        let report = await client.shutdown()
        try await running.value
        #expect(report.isComplete)
        #expect(TallyRPCCounter.name(of: Grpc_Health_V1_Health.Method.Check.descriptor) == "/grpc.health.v1.Health/Check")
        #expect(transport.delivered.withLock { $0 } == [TallyKeyName.key(for: "/grpc.health.v1.Health/Check"): 3])
    }
}

/// A health service that always answers SERVING: something for the interceptor to count.
struct AlwaysServing: Grpc_Health_V1_Health.SimpleServiceProtocol {
    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = .serving
        return response
    }

    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
               context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "not needed here")
    }
}
