import GRPCCore
import ServiceLifecycle
import TallyProtos

/// The standard `grpc.health.v1.Health` service, for load balancers and `grpc-health-probe`:
/// "" (the server) and "tally.v1.Tally" are SERVING while the node takes writes — the same
/// judgement as `GET /readyz` — and NOT_SERVING otherwise.
struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    /// Whether the node is ready (it takes writes).
    let isReady: @Sendable () -> Bool
    /// How often a Watch looks again.
    var pollInterval: Duration = .seconds(1)

    private func status(of service: String) -> Status? {
        switch service {
        case "", Tally_V1_Tally.descriptor.fullyQualifiedService: isReady() ? .serving : .notServing
        default: nil
        }
    }

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws
        -> Grpc_Health_V1_HealthCheckResponse
    {
        guard let status = status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service '\(request.service)'")
        }
        return .with { $0.status = status }
    }

    /// Sends the status, then each change, until the client cancels or the server shuts
    /// down (gRPC signals a client's cancel through `context.cancellation`, not by
    /// cancelling this task).
    func watch(request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
               context: ServerContext) async throws {
        var last = status(of: request.service) ?? .serviceUnknown
        try await response.write(.with { $0.status = last })
        while !context.cancellation.isCancelled, !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: pollInterval)
            let now = status(of: request.service) ?? .serviceUnknown
            if now != last {
                last = now
                try await response.write(.with { $0.status = now })
            }
        }
        if !context.cancellation.isCancelled { try await response.write(.with { $0.status = .notServing }) }
    }
}
