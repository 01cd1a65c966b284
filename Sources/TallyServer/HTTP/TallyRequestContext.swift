import Hummingbird
import NIOCore

/// Hummingbird's basic context plus the peer address, which rate limiting needs.
public struct TallyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer's IP address, as text.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
