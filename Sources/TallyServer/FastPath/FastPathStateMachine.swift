import NIOCore
import NIOHTTP1

/// The fast path's view of one HTTP/1.1 connection, as a plain state machine: the handler
/// feeds it what happens (a request part arrives, an answer is ready, Hummingbird finished a
/// routed answer, the client half-closed) and performs the action it returns. It is tested
/// without sockets (`FastPathStateMachineTests`).
///
/// The rules it keeps:
/// - **Answers leave in request order.** An ingest request is taken only when nothing routed
///   is in flight (one behind a routed request is routed too; the route answers the same).
///   While a taken request waits for its answer, everything that arrives behind it (parts,
///   decoder errors, the client's FIN) is held, at most `maxHeldParts`, with reads paused,
///   and replayed once it is answered.
/// - **A connection ends after its last answer**: when the request asked for it (`Connection:
///   close`, HTTP/1.0), or when the server quiesces (`ConnectionLifecycle`). Nothing read
///   after that last request is taken or passed on: no answer to it could be written, so it
///   must not be appended either.
struct FastPathStateMachine {
    /// What the handler does next.
    enum Action: Equatable {
        case none
        /// Pass the part on to Hummingbird (a routed request).
        case forward(HTTPServerRequestPart)
        /// An ingest request's head: apply the gate, then call `startTaking`.
        case take(HTTPRequestHead)
        /// Its body is complete: parse it and submit it (or, with a refusal, answer that).
        case submit(TakenRequest)
        /// Pass a decoder error on (Hummingbird answers 400 and closes).
        case forwardError(any Error)
        /// Pass the client's half-close on, once what was written is flushed.
        case forwardInputClosed
        /// Write the answer's end, then close the connection.
        case closeAfterWriting
        /// Write the answer's end and go on: replay what was held (`nextHeld`).
        case continueAfterWriting
        /// Too much arrived while an answer was owed, or an impossible sequence: close now.
        case close
        /// Ask the channel for more bytes.
        case read
    }

    private enum Reading {
        case betweenRequests
        /// A routed request is arriving; `closeAfter`: it asked to end the connection.
        case routed(closeAfter: Bool)
        /// `take` was returned for this head; `startTaking` comes next.
        case awaitingTake
        case taking(TakenRequest)
        /// The last request the connection answers has been read.
        case afterLastRequest
    }

    /// What arrived behind a taken request, in order.
    enum Held {
        case part(HTTPServerRequestPart)
        case error(any Error)
        case inputClosed
    }

    static let maxHeldParts = 4096

    private var reading = Reading.betweenRequests
    /// Routed requests whose answer Hummingbird has not finished writing.
    private(set) var routedInFlight = 0
    /// A taken request waits for its answer.
    private(set) var takenInFlight = false
    private var held = CircularBuffer<Held>()
    private var readPaused = false
    /// The connection closes after the answers being written: nothing more is taken.
    private(set) var closing = false
    private(set) var lifecycle: ConnectionLifecycle
    private let isIngest: (HTTPRequestHead) -> Bool

    init(lifecycle: ConnectionLifecycle, isIngest: @escaping (HTTPRequestHead) -> Bool) {
        self.lifecycle = lifecycle
        self.isIngest = isIngest
    }

    var heldCount: Int { held.count }

    // MARK: Inbound

    mutating func received(_ part: HTTPServerRequestPart, now: NIODeadline = .now()) -> Action {
        guard !closing else { return .none }  // no request read now could be answered
        lifecycle.read(part, now: now)
        if takenInFlight || !held.isEmpty { return hold(.part(part)) }
        return process(part)
    }

    /// The handler took the request `take` asked for: its body comes next.
    mutating func startTaking(_ request: TakenRequest) {
        guard case .awaitingTake = reading else { preconditionFailure("startTaking without a take") }
        reading = .taking(request)
    }

    mutating func receivedError(_ error: any Error) -> Action {
        if takenInFlight || !held.isEmpty { return hold(.error(error)) }
        return .forwardError(error)
    }

    /// The client sent FIN. Returns `.forwardInputClosed` when nothing is owed, else holds it.
    mutating func inputClosed() -> Action {
        if takenInFlight || !held.isEmpty { return hold(.inputClosed) }
        return .forwardInputClosed
    }

    private mutating func hold(_ item: Held) -> Action {
        guard held.count < Self.maxHeldParts else { return .close }
        held.append(item)
        return .none
    }

    private mutating func process(_ part: HTTPServerRequestPart) -> Action {
        switch (reading, part) {
        case (.betweenRequests, .head(let head)):
            if routedInFlight == 0, isIngest(head) {
                reading = .awaitingTake
                return .take(head)
            }
            routedInFlight += 1
            reading = .routed(closeAfter: !head.isKeepAlive)
            return .forward(part)
        case (.routed(let closeAfter), _):
            if case .end = part { reading = closeAfter ? .afterLastRequest : .betweenRequests }
            return .forward(part)
        case (.afterLastRequest, _):
            return .none
        case (.taking(var request), .body(let chunk)):
            reading = .betweenRequests  // so that the body buffer is uniquely referenced while it grows
            request.absorb(chunk)
            reading = .taking(request)
            return .none
        case (.taking(let request), .end):
            reading = .betweenRequests
            takenInFlight = true
            return .submit(request)
        case (.betweenRequests, .body), (.betweenRequests, .end), (.taking, .head), (.awaitingTake, _):
            // NIO's HTTP decoder never produces these sequences; do not guess what the client meant.
            return .close
        }
    }

    // MARK: Answers

    /// The taken request's answer is being written (its head and body are out).
    mutating func answeringTaken(closeAfterAnswer: Bool, now: NIODeadline = .now()) -> Action {
        precondition(takenInFlight, "an answer without a taken request")
        takenInFlight = false
        if lifecycle.answered(now: now) || closeAfterAnswer {
            closing = true
            held.removeAll()
            return .closeAfterWriting
        }
        return .continueAfterWriting
    }

    /// Whether the answer now being written must be flushed before the held FIN is passed on
    /// (a close drops unflushed writes).
    var inputClosedIsNext: Bool {
        if case .inputClosed? = held.first { return true }
        return false
    }

    /// Hummingbird is writing the end of a routed answer. Returns whether to close after it.
    mutating func routedAnswerEnded(now: NIODeadline = .now()) -> Bool {
        guard routedInFlight > 0 else { return false }  // a 400 for a request the decoder could not parse
        routedInFlight -= 1
        if lifecycle.answered(now: now) {
            closing = true
            return true
        }
        return false
    }

    /// The next held item to replay, as the action it leads to; nil when the handler should
    /// stop replaying (nothing held, a taken request waits again, or the connection closes).
    mutating func nextHeld() -> Action? {
        guard !takenInFlight, !closing, let item = held.popFirst() else { return nil }
        switch item {
        case .part(let part): return process(part)
        case .error(let error): return .forwardError(error)
        case .inputClosed: return .forwardInputClosed
        }
    }

    /// Called after replaying: whether reads were paused and may resume now.
    mutating func resumeReadingIfDrained() -> Bool {
        guard held.isEmpty, readPaused else { return false }
        readPaused = false
        return true
    }

    // MARK: Outbound and lifecycle

    /// The channel wants to read. Reads pause while anything is held.
    mutating func readRequested() -> Action {
        if closing { return .none }
        if held.isEmpty { return .read }
        readPaused = true
        return .none
    }

    /// Graceful shutdown: returns whether to close now (nothing in progress).
    mutating func quiesce() -> Bool {
        lifecycle.quiesce()
    }

    func idleCheck(now: NIODeadline = .now()) -> ConnectionLifecycle.IdleDecision {
        lifecycle.idleCheck(now: now, answerOwed: takenInFlight || routedInFlight > 0)
    }

    /// The connection is gone.
    mutating func forget() {
        held.removeAll()
    }
}

extension FastPathStateMachine.Action {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.forwardError(let a), .forwardError(let b)): String(describing: a) == String(describing: b)
        case (.none, .none), (.forwardInputClosed, .forwardInputClosed),
             (.closeAfterWriting, .closeAfterWriting), (.continueAfterWriting, .continueAfterWriting),
             (.close, .close), (.read, .read):
            true
        case (.forward(let a), .forward(let b)): a == b
        case (.take(let a), .take(let b)): a == b
        case (.submit(let a), .submit(let b)): a.kind == b.kind && a.body == b.body && a.idempotencyKey == b.idempotencyKey
        default: false
        }
    }
}
