import NIOCore
import NIOHTTP1
import TallyLog

/// Answers `POST /increment` on the connection's event loop, without a task per request.
///
/// Through Hummingbird's router every request becomes a Swift task on the cooperative pool:
/// the request crosses from the event loop to the pool and the response crosses back, and
/// each is converted to and from Swift HTTP Types on the way. On a two-core machine that
/// costs as much CPU as everything else the request does (BENCHMARKS.md). Increments are
/// nearly all of the traffic, so this handler, placed right after NIO's HTTP/1.1 codec and
/// before Hummingbird's, takes them out of the pipeline: it applies the same gate (API key,
/// rate limit), reads the body up to the limit, validates it with the same
/// `IncrementIntake`, appends with a completion callback and writes the answer once the log's
/// fdatasync covers the record. Everything else goes on to Hummingbird unchanged.
///
/// Because it sees every request and every answer on the connection, it also keeps the
/// connection's lifecycle that Hummingbird's connection-state handler would otherwise keep
/// (that handler only sees routed requests here): the idle timeout, and closing after the
/// last answer once the server asks connections to quiesce for a graceful shutdown.
///
/// Answers on one connection must leave in request order, so an increment is taken only
/// when nothing routed is in flight on the connection (one that arrives behind a routed
/// request is routed too; the route answers identically), and requests pipelined behind a
/// taken increment wait here, with reads paused, until its answer is written.
final class IncrementChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Dependencies: Sendable {
        let log: Log
        let metrics: ServerMetrics
        let intake: IncrementIntake
        let gate: RequestGate
        let serverName: String
        let idleTimeout: TimeAmount
    }

    /// An increment this handler has taken, while its body arrives.
    private struct TakenIncrement {
        let reply: Reply
        var body: ByteBuffer?
        /// Decided before the body ended (gate, size); the rest of the body is discarded.
        var refusal: Answer?
    }

    /// What answering a taken increment needs once its body has been parsed and let go.
    private struct Reply {
        let started: ContinuousClock.Instant
        let version: HTTPVersion
        let closeAfterAnswer: Bool
    }

    /// What arrived behind a taken increment, in order: request parts, and errors from the
    /// HTTP decoder (which Hummingbird answers with a 400, so they must not overtake either).
    private enum Held {
        case part(HTTPServerRequestPart)
        case error(any Error)
        /// The client half-closed (sent FIN) after its requests.
        case inputClosed
    }

    /// The request whose parts are arriving now.
    private enum Reading {
        case betweenRequests
        /// `closeAfter`: the request asked for the connection to close after its answer.
        case routed(closeAfter: Bool)
        case taken(TakenIncrement)
        /// The last request the connection will answer has been read (`Connection: close`
        /// or HTTP/1.0): what follows is dropped, never appended, since no answer to it
        /// could be written.
        case afterLastRequest
    }

    /// Requests pipelined behind a taken increment are held, at most this many parts; reads
    /// pause while any are held, so only what one socket read decoded can pile up here.
    static let maxHeldParts = 4096

    private let dependencies: Dependencies
    private var context: ChannelHandlerContext?
    private var reading = Reading.betweenRequests
    /// Routed requests whose answer Hummingbird has not finished writing.
    private var routedAwaitingAnswer = 0
    /// A taken increment is waiting for the log.
    private var takenAwaitingAnswer = false
    private var held = CircularBuffer<Held>()
    private var readPaused = false
    /// `releaseHeld` is running: answers written inside it do not start another one.
    private var releasing = false
    /// The connection closes once the last answer is out: nothing more is read or taken.
    private var closing = false
    /// The flush of the answer written just before a held `inputClosed`.
    private var flushedBeforeInputClosed: EventLoopFuture<Void>?
    private var responseHeaders: ResponseHeaders
    private var lifecycle: ConnectionLifecycle
    private var idleCheck: Scheduled<Void>?

    init(_ dependencies: Dependencies) {
        self.dependencies = dependencies
        responseHeaders = ResponseHeaders(serverName: dependencies.serverName)
        lifecycle = ConnectionLifecycle(idleTimeout: dependencies.idleTimeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { scheduleIdleCheck(at: lifecycle.firstIdleCheck, context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
    }

    func channelActive(context: ChannelHandlerContext) {
        if idleCheck == nil { scheduleIdleCheck(at: lifecycle.firstIdleCheck, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        context.fireChannelInactive()
    }

    /// The connection is gone: answers still on their way from the log are dropped.
    private func forget() {
        context = nil
        held.removeAll()
        idleCheck?.cancel()
        idleCheck = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Graceful shutdown: finish what was asked, then close. Not passed on: this handler
            // sees every answer, Hummingbird's connection-state handler only the routed ones.
            if lifecycle.quiesce() { context.close(promise: nil) }
            return
        }
        if case .inputClosed? = event as? ChannelEvent, takenAwaitingAnswer || !held.isEmpty {
            // Hummingbird closes the connection when the input ends and it has nothing to
            // answer; the client must first hear the answers it is owed.
            hold(.inputClosed, context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) { handler.value.idleCheckDue() }
    }

    private func idleCheckDue() {
        idleCheck = nil
        guard let context else { return }
        switch lifecycle.idleCheck(answerOwed: takenAwaitingAnswer || routedAwaitingAnswer > 0) {
        case .close: context.close(promise: nil)
        case .checkAgain(let deadline): scheduleIdleCheck(at: deadline, context: context)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }  // no request read now could be answered
        let part = unwrapInboundIn(data)
        lifecycle.read(part)
        if takenAwaitingAnswer || !held.isEmpty {
            hold(.part(part), context: context)
            return
        }
        process(part, context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if takenAwaitingAnswer || !held.isEmpty {
            hold(.error(error), context: context)
            return
        }
        context.fireErrorCaught(error)
    }

    private func hold(_ item: Held, context: ChannelHandlerContext) {
        guard held.count < Self.maxHeldParts else {
            context.close(promise: nil)
            return
        }
        held.append(item)
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (reading, part) {
        case (.betweenRequests, .head(let head)):
            if routedAwaitingAnswer == 0, Self.isIncrement(head) {
                reading = .taken(take(head, context: context))
            } else {
                routedAwaitingAnswer += 1
                reading = .routed(closeAfter: !head.isKeepAlive)
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.routed(let closeAfter), let part):
            if case .end = part { reading = closeAfter ? .afterLastRequest : .betweenRequests }
            context.fireChannelRead(wrapInboundOut(part))
        case (.afterLastRequest, _):
            break
        case (.taken(var increment), .body(let chunk)):
            reading = .betweenRequests  // so that `increment.body` is uniquely referenced while it grows
            absorb(chunk, into: &increment)
            reading = .taken(increment)
        case (.taken(let increment), .end):
            reading = .betweenRequests
            answer(increment, context: context)
        case (.betweenRequests, .body), (.betweenRequests, .end), (.taken, .head):
            // NIO's HTTP decoder never produces these sequences; do not guess what the client meant.
            assertionFailure("HTTP part \(part) out of order")
            context.close(promise: nil)
        }
    }

    private static func isIncrement(_ head: HTTPRequestHead) -> Bool {
        head.method == .POST && (head.uri == "/increment" || head.uri.hasPrefix("/increment?"))
    }

    private func take(_ head: HTTPRequestHead, context: ChannelHandlerContext) -> TakenIncrement {
        var increment = TakenIncrement(reply: Reply(started: .now, version: head.version, closeAfterAnswer: !head.isKeepAlive))
        let headers = head.headers
        if !dependencies.gate.isOpen {
            increment.refusal = dependencies.gate.refusal(
                path: "/increment", authorization: Self.joined(headers, "authorization"),
                forwardedFor: headers.first(name: "x-forwarded-for"),
                peer: { context.channel.remoteAddress?.ipAddress })
        }
        if increment.refusal == nil {
            increment.refusal = dependencies.intake.refusesDeclaredLength(headers.first(name: "content-length"))
        }
        return increment
    }

    /// All values of a header joined by ", ", as `HTTPFields` (the router's view) gives them.
    private static func joined(_ headers: HTTPHeaders, _ name: String) -> String? {
        let values = headers[name]
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    private func absorb(_ chunk: ByteBuffer, into increment: inout TakenIncrement) {
        guard increment.refusal == nil else { return }
        let sizeBytes = (increment.body?.readableBytes ?? 0) + chunk.readableBytes
        guard sizeBytes <= dependencies.intake.maxBodyBytes else {
            increment.refusal = .bodyTooLarge(maxBodyBytes: dependencies.intake.maxBodyBytes)
            increment.body = nil
            return
        }
        if increment.body == nil {
            increment.body = chunk
        } else {
            increment.body!.writeImmutableBuffer(chunk)
        }
    }

    /// The whole request is in: refuse it, or append it and answer when the log calls back.
    private func answer(_ increment: TakenIncrement, context: ChannelHandlerContext) {
        takenAwaitingAnswer = true
        if let refusal = increment.refusal {
            return write(refusal, to: increment.reply, context: context)
        }
        let body = increment.body ?? ByteBuffer()
        switch body.withUnsafeReadableBytes({ dependencies.intake.outcome(forBody: $0) }) {
        case .refuse(let refusal):
            write(refusal, to: increment.reply, context: context)
        case .append(let record):
            let eventLoop = context.eventLoop
            let handler = NIOLoopBound(self, eventLoop: eventLoop)
            let reply = increment.reply  // not the body: its receive buffer need not live until the fdatasync
            dependencies.log.append(record) { result in
                // On the log's writer thread: hand the result to the connection's event loop.
                eventLoop.execute { handler.value.logAnswered(result, for: reply) }
            }
        }
    }

    private func logAnswered(_ result: Result<LSN, LogError>, for reply: Reply) {
        guard let context else { return }  // the connection is gone; the client hears nothing
        switch result {
        case .success(let lsn):
            dependencies.metrics.recordAcknowledged(after: .now - reply.started)
            write(.acknowledged(lsn: lsn), to: reply, context: context)
        case .failure(let error):
            write(.notStored(error), to: reply, context: context)
        }
    }

    private func write(_ answer: Answer, to reply: Reply, context: ChannelHandlerContext) {
        precondition(takenAwaitingAnswer, "an answer without a taken increment")
        dependencies.metrics.countRequest(.increment, status: Int(answer.status.code))
        dependencies.metrics.recordAnsweredOnEventLoop()
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)
        let head = HTTPResponseHead(
            version: reply.version, status: HTTPResponseStatus(statusCode: Int(answer.status.code)),
            headers: responseHeaders.headers(for: answer, bodySizeBytes: body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        takenAwaitingAnswer = false
        if lifecycle.answered() || reply.closeAfterAnswer {
            return closeAfterWriting(wrapOutboundOut(.end(nil)), promise: nil, context: context)
        }
        if case .inputClosed? = held.last {
            // The client sent FIN behind its requests: pass that on (Hummingbird then closes)
            // only once this answer is out, since a close drops unflushed writes.
            let flushed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            flushedBeforeInputClosed = flushed
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        releaseHeld(context: context)
    }

    /// Writes the last part of an answer, then closes the connection once it is out. Nothing
    /// read from now on is taken or passed on.
    private func closeAfterWriting(_ data: NIOAny, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        closing = true
        held.removeAll()
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.whenComplete { _ in context.close(promise: nil) }
        context.writeAndFlush(data, promise: written)
    }

    /// Replays held parts in order until one of them is a taken increment again.
    private func releaseHeld(context: ChannelHandlerContext) {
        // A refusal answered inside this loop calls back here; the loop itself goes on, so
        // the stack stays flat however many requests were pipelined.
        guard !releasing, !held.isEmpty else { return }
        releasing = true
        defer { releasing = false }
        while !takenAwaitingAnswer, !closing, let item = held.popFirst() {
            switch item {
            case .part(let part):
                process(part, context: context)
            case .error(let error):
                context.fireErrorCaught(error)
            case .inputClosed:
                let flushed = flushedBeforeInputClosed ?? context.eventLoop.makeSucceededVoidFuture()
                flushedBeforeInputClosed = nil
                flushed.whenComplete { _ in context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
            }
            guard self.context != nil else { return }
        }
        // Handlers after this one (the async channel feeding the router) deliver what they
        // were given when the read completes; these parts arrived outside any read.
        context.fireChannelReadComplete()
        if held.isEmpty && readPaused {
            readPaused = false
            context.read()
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Only the end of a routed request's answer counts: Hummingbird also answers a request
        // the decoder could not parse (400, then it closes), whose head never came through.
        guard case .end = unwrapOutboundIn(data), routedAwaitingAnswer > 0 else {
            return context.write(data, promise: promise)
        }
        routedAwaitingAnswer -= 1
        if lifecycle.answered() {
            closeAfterWriting(data, promise: promise, context: context)
        } else {
            context.write(data, promise: promise)
        }
    }

    func read(context: ChannelHandlerContext) {
        if closing { return }
        if held.isEmpty {
            context.read()
        } else {
            readPaused = true
        }
    }
}
