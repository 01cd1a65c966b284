import Logging
import ServiceLifecycle
import Synchronization

/// Set once SIGTERM (or SIGINT) has begun a graceful stop: `/readyz` and gRPC health then
/// say "not ready" while the listeners still take requests (`DrainService`).
public final class DrainSignal: Sendable {
    private let draining = Atomic(false)

    public init() {}

    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    func begin() { draining.store(true, ordering: .relaxed) }
}

/// The first service to hear of a graceful stop (the service group stops services in reverse
/// order, and this one is registered last): it marks the node as draining and waits
/// `drainTime` before letting the fronts close their listeners. A load balancer that checks
/// `/readyz` every second takes the node out of rotation within that time, so no client is
/// sent to a node that has already stopped listening.
struct DrainService: Service {
    let signal: DrainSignal
    let drainTime: Duration
    let logger: Logger

    func run() async throws {
        // Returns at the graceful stop; cancellation (a forced stop) returns at once too.
        try? await gracefulShutdown()
        guard !Task.isCancelled else { return }
        signal.begin()
        guard drainTime > .zero else { return }
        logger.notice("draining: /readyz answers 503 until the listeners close",
                      metadata: ["drain_time": "\(drainTime)"])
        try? await Task.sleep(for: drainTime)
    }
}
