import Hummingbird
import NIOCore

/// Hummingbird's basic context plus the peer address, which rate limiting needs.
public struct TallyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    private let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The TCP peer's IP address, as text; looked up only when asked (rate limiting).
    public var peerAddress: String? { channel.remoteAddress?.ipAddress }
}
