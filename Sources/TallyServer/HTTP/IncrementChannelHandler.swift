import HTTPTypes
import NIOCore
import NIOHTTPTypes
import TallyLog

/// Answers `POST /increment` on the connection's event loop, without a task per request.
///
/// Through Hummingbird's router every request becomes a Swift task on the cooperative pool:
/// the request crosses from the event loop to the pool and the response crosses back. On a
/// two-core machine those crossings cost about as much CPU as everything else the request
/// does (BENCHMARKS.md: a no-op route answered here takes half the CPU time per request it
/// takes through the router). Increments are nearly all of the traffic, so this handler takes
/// them out of the pipeline: it applies the same gate (API key, rate limit), reads the body
/// up to the limit, validates it with the same `IncrementIntake`, appends with a completion
/// callback and writes the answer once the log's fdatasync covers the record.
///
/// It sits after Hummingbird's `HTTPConnectionStateHandler`, so idle timeouts and graceful
/// shutdown still see every request and response. Everything else goes on to Hummingbird.
/// Answers on one connection must leave in request order, so an increment is taken only
/// when nothing routed is in flight on the connection (one that arrives behind a routed
/// request is routed too; the route answers identically), and requests pipelined behind a
/// taken increment wait here, with reads paused, until its answer is written.
final class IncrementChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// What every connection's handler shares.
    struct Dependencies: Sendable {
        let log: Log
        let metrics: ServerMetrics
        let intake: IncrementIntake
        let gate: RequestGate
        let serverName: String
    }

    /// An increment this handler has taken, while its body arrives.
    private struct TakenIncrement {
        let started: ContinuousClock.Instant
        let closeAfterAnswer: Bool
        var body: ByteBuffer?
        /// Decided before the body ended (gate, size); the rest of the body is discarded.
        var refusal: Answer?
    }

    /// The request whose parts are arriving now.
    private enum Reading {
        case betweenRequests
        case routed
        case taken(TakenIncrement)
    }

    /// Requests pipelined behind a taken increment are held, at most this many parts; reads
    /// pause while any are held, so only what one socket read decoded can pile up here.
    static let maxHeldParts = 4096
    private static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    private let dependencies: Dependencies
    private var context: ChannelHandlerContext?
    private var reading = Reading.betweenRequests
    /// Routed requests whose answer Hummingbird has not finished writing.
    private var routedAwaitingAnswer = 0
    /// A taken increment is waiting for the log.
    private var takenAwaitingAnswer = false
    private var held = CircularBuffer<HTTPRequestPart>()
    private var readPaused = false
    private var responseFields: ResponseFields

    init(_ dependencies: Dependencies) {
        self.dependencies = dependencies
        responseFields = ResponseFields(serverName: dependencies.serverName)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        held.removeAll()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        held.removeAll()
        context.fireChannelInactive()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if takenAwaitingAnswer || !held.isEmpty {
            guard held.count < Self.maxHeldParts else {
                context.close(promise: nil)
                return
            }
            held.append(part)
            return
        }
        process(part, context: context)
    }

    private func process(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (reading, part) {
        case (.betweenRequests, .head(let head)):
            if routedAwaitingAnswer == 0, Self.isIncrement(head) {
                reading = .taken(take(head, context: context))
            } else {
                routedAwaitingAnswer += 1
                reading = .routed
                context.fireChannelRead(wrapInboundOut(part))
            }
        case (.routed, let part):
            if case .end = part { reading = .betweenRequests }
            context.fireChannelRead(wrapInboundOut(part))
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

    private static func isIncrement(_ head: HTTPRequest) -> Bool {
        guard head.method == .post, let path = head.path else { return false }
        return path == "/increment" || path.hasPrefix("/increment?")
    }

    private func take(_ head: HTTPRequest, context: ChannelHandlerContext) -> TakenIncrement {
        // One pass over the fields: the subscript by name scans (and joins) on every call.
        var connection: String?
        var contentLength: String?
        var authorization: String?
        var forwardedFor: String?
        for field in head.headerFields {
            switch field.name {
            case .contentLength: contentLength = field.value
            case .connection: connection = field.value
            case .authorization: authorization = authorization ?? field.value
            case Self.forwardedFor: forwardedFor = forwardedFor ?? field.value
            default: break
            }
        }
        var increment = TakenIncrement(started: .now, closeAfterAnswer: connection?.lowercased() == "close")
        if !dependencies.gate.isOpen {
            increment.refusal = dependencies.gate.refusal(
                path: "/increment", authorization: authorization, forwardedFor: forwardedFor,
                peer: { context.channel.remoteAddress?.ipAddress })
        }
        if increment.refusal == nil {
            increment.refusal = dependencies.intake.refusesDeclaredLength(contentLength)
        }
        return increment
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
            return write(refusal, closing: increment.closeAfterAnswer, context: context)
        }
        let body = increment.body ?? ByteBuffer()
        switch body.withUnsafeReadableBytes({ dependencies.intake.outcome(forBody: $0) }) {
        case .refuse(let refusal):
            write(refusal, closing: increment.closeAfterAnswer, context: context)
        case .append(let record):
            let eventLoop = context.eventLoop
            let handler = NIOLoopBound(self, eventLoop: eventLoop)
            let started = increment.started
            let closing = increment.closeAfterAnswer
            dependencies.log.append(record) { result in
                // On the log's writer thread: hand the result to the connection's event loop.
                eventLoop.execute { handler.value.logAnswered(result, started: started, closing: closing) }
            }
        }
    }

    private func logAnswered(_ result: Result<LSN, LogError>, started: ContinuousClock.Instant, closing: Bool) {
        guard let context else { return }  // the connection is gone; the client hears nothing
        switch result {
        case .success(let lsn):
            dependencies.metrics.recordAcknowledged(after: .now - started)
            write(.acknowledged(lsn: lsn), closing: closing, context: context)
        case .failure(let error):
            write(.notStored(error), closing: closing, context: context)
        }
    }

    private func write(_ answer: Answer, closing: Bool, context: ChannelHandlerContext) {
        precondition(takenAwaitingAnswer, "an answer without a taken increment")
        dependencies.metrics.countRequest(.increment, status: Int(answer.status.code))
        dependencies.metrics.recordAnsweredOnEventLoop()
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)
        let fields = responseFields.fields(for: answer, bodySizeBytes: body.readableBytes)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: answer.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        takenAwaitingAnswer = false
        if closing {
            held.removeAll()
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        releaseHeld(context: context)
    }

    /// Replays held parts in order until one of them is a taken increment again.
    private func releaseHeld(context: ChannelHandlerContext) {
        guard !held.isEmpty else { return }
        while !takenAwaitingAnswer, let part = held.popFirst() {
            process(part, context: context)
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
        if case .end = unwrapOutboundIn(data), routedAwaitingAnswer > 0 {
            routedAwaitingAnswer -= 1
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if held.isEmpty {
            context.read()
        } else {
            readPaused = true
        }
    }
}
