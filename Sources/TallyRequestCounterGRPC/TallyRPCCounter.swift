#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCCore
import Synchronization
import TallyClient

/// A grpc-swift-2 server interceptor that counts every RPC in Tally under its full method
/// name, `"/package.Service/Method"` (as it travels in the HTTP/2 `:path`), through a
/// ``TallyClient``: one queued increment per call, never waiting for the network. The first
/// call of a method registers its name with the daemon.
///
/// ```swift
/// let server = GRPCServer(transport: transport, services: [service],
///                         interceptors: [TallyRPCCounter(client: tally)])
/// ```
public struct TallyRPCCounter: ServerInterceptor {
    private let client: TallyClient
    private let keys = MethodKeys()

    public init(client: TallyClient) {
        self.client = client
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        await client.increment(key: keys.key(for: context.descriptor, client: client))
        return try await next(request, context)
    }

    /// The name an RPC is counted under: `"/" + "package.Service/Method"`.
    public static func name(of method: MethodDescriptor) -> String {
        "/" + method.fullyQualifiedMethod
    }
}

/// Keys of the methods seen so far: a service has a fixed set of methods, so this stays small.
final class MethodKeys: Sendable {
    private let keys = Mutex<[MethodDescriptor: UUIDValue]>([:])

    struct UUIDValue: Sendable {
        let uuid: UUID
    }

    func key(for method: MethodDescriptor, client: TallyClient) -> UUID {
        if let known = keys.withLock({ $0[method] }) { return known.uuid }
        let key = client.register(name: TallyRPCCounter.name(of: method))
        keys.withLock { $0[method] = UUIDValue(uuid: key) }
        return key
    }
}
