import NIOCore
import NIOHTTP1

/// When a connection closes on its own: after `idleTimeout` with no request in progress, and
/// after its last answer once the server asked it to quiesce (graceful shutdown). The same
/// rules as Hummingbird's connection-state handler, kept by `IncrementChannelHandler`
/// because only it sees every request and answer of the connection. A plain state machine:
/// the handler feeds it events and carries out its decisions.
struct ConnectionLifecycle {
    enum IdleDecision: Equatable {
        case close
        case checkAgain(at: NIODeadline)
    }

    let idleTimeout: TimeAmount
    /// Requests whose head arrived and whose answer has not been fully written.
    private(set) var requestsInProgress = 0
    private var isRequestBeingRead = false
    private var lastActive: NIODeadline
    private(set) var quiescing = false

    init(idleTimeout: TimeAmount, now: NIODeadline = .now()) {
        precondition(idleTimeout > .zero, "an idle timeout must be positive")
        self.idleTimeout = idleTimeout
        lastActive = now
    }

    /// When the first idle check is due.
    var firstIdleCheck: NIODeadline { lastActive + idleTimeout }

    mutating func read(_ part: HTTPServerRequestPart, now: NIODeadline = .now()) {
        lastActive = now
        switch part {
        case .head:
            requestsInProgress += 1
            isRequestBeingRead = true
        case .body:
            break
        case .end:
            isRequestBeingRead = false
        }
    }

    /// An answer's last part is being written. Returns whether to close once it is out.
    mutating func answered(now: NIODeadline = .now()) -> Bool {
        assert(requestsInProgress > 0, "an answer without a request")
        requestsInProgress = max(0, requestsInProgress - 1)
        lastActive = now
        return quiescing && requestsInProgress == 0
    }

    /// The server is shutting down gracefully. Returns whether to close now (nothing pending).
    mutating func quiesce() -> Bool {
        quiescing = true
        return requestsInProgress == 0
    }

    /// - Parameter answerOwed: a request was read whole and its answer is not written yet
    ///   (the client waits on us, even if a pipelined request behind it is half read).
    func idleCheck(now: NIODeadline = .now(), answerOwed: Bool = false) -> IdleDecision {
        // A request fully read and not yet answered: the client waits on us, not idle.
        if answerOwed || (requestsInProgress > 0 && !isRequestBeingRead) { return .checkAgain(at: now + idleTimeout) }
        let deadline = lastActive + idleTimeout
        return now >= deadline ? .close : .checkAgain(at: deadline)
    }
}
