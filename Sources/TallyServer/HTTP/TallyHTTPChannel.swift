import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1.1 connection with `IncrementChannelHandler` placed between its
/// connection-state handler and the async channel that feeds the router.
struct TallyHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let increments: IncrementChannelHandler.Dependencies

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let connectionState = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(IncrementChannelHandler(increments), position: .after(connectionState))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with increments answered on the event loop.
    static func tally(idleTimeout: TimeAmount, increments: IncrementChannelHandler.Dependencies) -> HTTPServerBuilder {
        .init { responder in
            TallyHTTPChannel(base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: idleTimeout)),
                             increments: increments)
        }
    }
}
