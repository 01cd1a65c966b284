import NIOCore
import NIOHTTP1
import TallyCore
import TallyIngest
import TallyLog

/// Answers `POST /increment` and `POST /increments` on the connection's event loop, without
/// a task per request.
///
/// Through Hummingbird's router every request becomes a Swift task on the cooperative pool:
/// the request crosses from the event loop to the pool and the response crosses back, and
/// each is converted to and from Swift HTTP Types on the way. On a two-core machine that
/// costs as much CPU as everything else the request does (BENCHMARKS.md). Ingest is nearly
/// all of the traffic, so this handler, placed right after NIO's HTTP/1.1 codec and before
/// Hummingbird's, takes it out of the pipeline: it applies the same gate (API key, rate
/// limit), reads the body up to the route's limit, validates it with the same
/// `IncrementIntake`, submits it to `Ingest` with a completion callback and writes the answer
/// once the log's fdatasync covers it. Everything else goes on to Hummingbird unchanged.
///
/// The connection's rules (answers in request order, what waits behind a taken request,
/// when the connection closes, the idle timeout and graceful quiesce that Hummingbird's
/// connection-state handler would otherwise keep) live in `FastPathStateMachine`; this
/// handler performs its actions.
final class IngestChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Dependencies: Sendable {
        let ingest: Ingest
        let metrics: ServerMetrics
        let intake: IncrementIntake
        let gate: RequestGate
        let serverName: String
        let idleTimeout: TimeAmount
        /// Where answers ready on the log's writer thread are handed to each event loop.
        let mailboxes = EventLoopMailboxes()
    }

    private let dependencies: Dependencies
    private var context: ChannelHandlerContext?
    private var machine: FastPathStateMachine
    /// The replay loop is running: answers written inside it do not start another one.
    private var releasing = false
    /// The flush of the answer written just before a held FIN.
    private var flushedBeforeInputClosed: EventLoopFuture<Void>?
    private var responseHeaders: ResponseHeaders
    private var idleCheck: Scheduled<Void>?
    /// This connection's event loop's mailbox (set when the handler is added).
    private var mailbox: EventLoopMailbox?

    init(_ dependencies: Dependencies) {
        self.dependencies = dependencies
        responseHeaders = ResponseHeaders(serverName: dependencies.serverName)
        machine = FastPathStateMachine(lifecycle: ConnectionLifecycle(idleTimeout: dependencies.idleTimeout)) { head in
            IncrementIntake.kind(method: head.method.rawValue, uri: head.uri) != nil
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        mailbox = dependencies.mailboxes.mailbox(for: context.eventLoop)
        if context.channel.isActive { scheduleIdleCheck(at: machine.lifecycle.firstIdleCheck, context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
    }

    func channelActive(context: ChannelHandlerContext) {
        if idleCheck == nil { scheduleIdleCheck(at: machine.lifecycle.firstIdleCheck, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        context.fireChannelInactive()
    }

    /// The connection is gone: answers still on their way from the log are dropped.
    private func forget() {
        context = nil
        machine.forget()
        idleCheck?.cancel()
        idleCheck = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Graceful shutdown: finish what was asked, then close. Not passed on: this handler
            // sees every answer, Hummingbird's connection-state handler only the routed ones.
            if machine.quiesce() { context.close(promise: nil) }
            return
        }
        if case .inputClosed? = event as? ChannelEvent {
            perform(machine.inputClosed(), context: context)
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
        switch machine.idleCheck() {
        case .close: context.close(promise: nil)
        case .checkAgain(let deadline): scheduleIdleCheck(at: deadline, context: context)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.received(unwrapInboundIn(data)), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        perform(machine.receivedError(error), context: context)
    }

    /// Carries out one of the machine's actions.
    private func perform(_ action: FastPathStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .forward(let part):
            context.fireChannelRead(wrapInboundOut(part))
        case .take(let head):
            machine.startTaking(take(head, context: context))
        case .submit(let request):
            submit(request, context: context)
        case .forwardError(let error):
            context.fireErrorCaught(error)
        case .forwardInputClosed:
            // Hummingbird closes the connection when the input ends; a close drops unflushed
            // writes, so the answer written just before goes out first.
            let flushed = flushedBeforeInputClosed ?? context.eventLoop.makeSucceededVoidFuture()
            flushedBeforeInputClosed = nil
            flushed.whenComplete { _ in context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        case .close:
            context.close(promise: nil)
        case .read:
            context.read()
        case .closeAfterWriting, .continueAfterWriting:
            preconditionFailure("answers are written by write(_:to:context:)")
        }
    }

    /// The gate and the header checks, before any body byte: a refusal decided here is
    /// answered once the body has been read (and discarded).
    private func take(_ head: HTTPRequestHead, context: ChannelHandlerContext) -> TakenRequest {
        let kind = IncrementIntake.kind(method: head.method.rawValue, uri: head.uri)!
        let headers = head.headers
        let intake = dependencies.intake
        let reply = Reply(kind: kind, started: .now, version: head.version, closeAfterAnswer: !head.isKeepAlive)
        let idempotencyKey = Self.joined(headers, "idempotency-key")
        var refusal: Answer?
        if !dependencies.gate.isOpen {
            refusal = dependencies.gate.refusal(
                authorization: Self.joined(headers, "authorization"), forwardedFor: headers.first(name: "x-forwarded-for"),
                peer: { context.channel.remoteAddress?.ipAddress }).map(Answer.refusal)
        }
        refusal = refusal ?? intake.refusesDeclaredLength(headers.first(name: "content-length"), kind: kind)
            ?? intake.refusesIdempotencyKey(idempotencyKey)
        return TakenRequest(kind: kind, reply: reply, idempotencyKey: idempotencyKey,
                            maxBodyBytes: intake.maxBytes(for: kind), refusal: refusal)
    }

    /// All values of a header joined by ", ", as `HTTPFields` (the router's view) gives them.
    private static func joined(_ headers: HTTPHeaders, _ name: String) -> String? {
        let values = headers[name]
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    /// The whole request is in: refuse it, or submit it and answer when ingest calls back.
    private func submit(_ request: TakenRequest, context: ChannelHandlerContext) {
        let reply = request.reply
        if let refusal = request.refusal { return write(refusal, to: reply, context: context) }
        let body = request.body ?? ByteBuffer()
        let intake = dependencies.intake
        switch body.withUnsafeReadableBytes({ intake.outcome(kind: reply.kind, body: $0, idempotencyKey: request.idempotencyKey) }) {
        case .refuse(let refusal):
            write(refusal, to: reply, context: context)
        case .submit(let records, let tag):
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let mailbox = mailbox ?? dependencies.mailboxes.mailbox(for: context.eventLoop)
            // Not the body: its receive buffer need not live until the fdatasync.
            dependencies.ingest.submit(records, tag: tag) { outcome in
                // On the log's writer thread (or a lookup task): hand it to the event loop,
                // in one wake-up with the other answers of the same frame.
                mailbox.post { handler.value.ingested(outcome, for: reply) }
            }
        }
    }

    private func ingested(_ outcome: IngestOutcome, for reply: Reply) {
        guard let context else { return }  // the connection is gone; the client hears nothing
        if case .stored = outcome { dependencies.metrics.recordAcknowledged(after: .now - reply.started) }
        write(dependencies.intake.answer(outcome, kind: reply.kind), to: reply, context: context)
    }

    private func write(_ answer: Answer, to reply: Reply, context: ChannelHandlerContext) {
        dependencies.metrics.countRequest(reply.kind == .single ? .increment : .increments, status: Int(answer.status.code))
        dependencies.metrics.recordAnsweredOnEventLoop()
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)
        let head = HTTPResponseHead(
            version: reply.version, status: HTTPResponseStatus(statusCode: Int(answer.status.code)),
            headers: responseHeaders.headers(for: answer, bodySizeBytes: body.readableBytes))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let flushFirst = machine.inputClosedIsNext
        switch machine.answeringTaken(closeAfterAnswer: reply.closeAfterAnswer) {
        case .closeAfterWriting:
            closeAfterWriting(wrapOutboundOut(.end(nil)), promise: nil, context: context)
        default:
            if flushFirst {
                flushedBeforeInputClosed = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
            releaseHeld(context: context)
        }
    }

    /// Writes the last part of an answer, then closes the connection once it is out.
    private func closeAfterWriting(_ data: NIOAny, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.whenComplete { _ in context.close(promise: nil) }
        context.writeAndFlush(data, promise: written)
    }

    /// Replays held parts in order until one of them is a taken request again.
    private func releaseHeld(context: ChannelHandlerContext) {
        // A refusal answered inside this loop calls back here; the loop itself goes on, so
        // the stack stays flat however many requests were pipelined.
        guard !releasing else { return }
        releasing = true
        defer { releasing = false }
        while let action = machine.nextHeld() {
            perform(action, context: context)
            guard self.context != nil else { return }
        }
        // Handlers after this one (the async channel feeding the router) deliver what they
        // were given when the read completes; these parts arrived outside any read.
        context.fireChannelReadComplete()
        if machine.resumeReadingIfDrained() { context.read() }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Only the end of a routed request's answer counts: Hummingbird also answers a request
        // the decoder could not parse (400, then it closes), whose head never came through.
        guard case .end = unwrapOutboundIn(data), machine.routedAnswerEnded() else {
            return context.write(data, promise: promise)
        }
        closeAfterWriting(data, promise: promise, context: context)
    }

    func read(context: ChannelHandlerContext) {
        perform(machine.readRequested(), context: context)
    }
}
