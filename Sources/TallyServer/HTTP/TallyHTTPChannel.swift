import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1.1 connection with `IngestChannelHandler` placed between NIO's
/// HTTP/1.1 codec and Hummingbird's conversion to Swift HTTP Types. The handler keeps the
/// connection's idle timeout and graceful close itself (Hummingbird's connection-state
/// handler, which would only see routed requests, gets no timeout and no quiesce event).
struct TallyHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let increments: IngestChannelHandler.Dependencies

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let typesCodec = try pipeline.handler(type: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(IngestChannelHandler(increments), position: .before(typesCodec))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with increments answered on the event loop.
    static func tally(increments: IngestChannelHandler.Dependencies) -> HTTPServerBuilder {
        .init { responder in
            TallyHTTPChannel(base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: nil)),
                             increments: increments)
        }
    }
}
