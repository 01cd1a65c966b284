import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Synchronization
import TallyClient
import TallyProtos

/// Batches over one long-lived `tally.v1.Tally/Increment` stream (HTTP/2): each batch is one
/// `IncrementRequest` with the batch id as `request_id`, acknowledged in order once durable.
///
/// The stream is opened on the first send and reopened after it ends. When it ends with an
/// error (the daemon restarted, a reset), every request still unacknowledged on it is retried
/// by the client with its id, so the daemon counts it once; `INVALID_ARGUMENT` and
/// `UNAUTHENTICATED` refuse the request at the head of the stream for good. A request not
/// acknowledged within the client's timeout ends the stream (a stalled daemon), which
/// retries everything on it.
public final class GRPCTransport: TallyTransport {
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let tally: Tally_V1_Tally.Client<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Never>
    private let metadata: Metadata
    private let current = Mutex<IncrementStream?>(nil)

    /// - Parameters:
    ///   - host: the daemon's `--grpc-listen` address (an IPv4 literal or a DNS name).
    ///   - apiKey: sent as `authorization: Bearer <key>` metadata.
    public init(host: String, port: Int, apiKey: String? = nil) throws {
        let target: any ResolvableTarget = host.split(separator: ".").count == 4 && host.allSatisfy({ $0.isNumber || $0 == "." })
            ? .ipv4(address: host, port: port) : .dns(host: host, port: port)
        let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: .plaintext)
        let client = GRPCClient(transport: transport)
        self.client = client
        tally = Tally_V1_Tally.Client(wrapping: client)
        connections = Task { try? await client.runConnections() }
        var metadata = Metadata()
        if let apiKey { metadata.addString("Bearer \(apiKey)", forKey: "authorization") }
        self.metadata = metadata
    }

    public func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome {
        var request = Tally_V1_IncrementRequest()
        request.requestID = batch.id
        request.increments = batch.lines.map { line in
            var increment = Tally_V1_Increment()
            increment.key = line.key.uuidString
            increment.value = line.value
            return increment
        }
        return await stream().send(request, timeout: timeout)
    }

    /// The open stream, or a new one when there is none or it has ended.
    private func stream() -> IncrementStream {
        current.withLock { current in
            if let open = current, open.isOpen { return open }
            let fresh = IncrementStream(tally: tally, metadata: metadata)
            current = fresh
            return fresh
        }
    }

    public func shutdown() async {
        current.withLock { $0 }?.close()
        client.beginGracefulShutdown()
        await connections.value
    }
}

/// One `Increment` stream: requests go out in order, acks come back in the same order, so
/// the oldest unacknowledged request is the one an ack (or a refusal) is about.
final class IncrementStream: Sendable {
    private let state = StreamState()
    private let requests: AsyncStream<Tally_V1_IncrementRequest>.Continuation
    private let task: Task<Void, Never>

    init(tally: Tally_V1_Tally.Client<HTTP2ClientTransport.Posix>, metadata: Metadata) {
        let (outgoing, requests) = AsyncStream<Tally_V1_IncrementRequest>.makeStream()
        self.requests = requests
        let state = self.state
        task = Task {
            let reason: String
            do {
                try await tally.increment(metadata: metadata) { writer in
                    for await request in outgoing { try await writer.write(request) }
                } onResponse: { response in
                    for try await ack in response.messages {
                        let head = state.popHead()
                        head?.continuation.resume(returning: head?.id == ack.requestID
                            ? .delivered : .retry(reason: "an ack for \(ack.requestID) out of order", after: nil))
                    }
                }
                reason = "the stream ended"
            } catch let error as RPCError {
                switch error.code {
                case .invalidArgument, .unauthenticated, .permissionDenied, .alreadyExists:
                    // About the request at the head; the ones behind it were never taken.
                    // ALREADY_EXISTS is HTTP's 409: its id was taken with other increments,
                    // and no retry of the same request can change that.
                    state.popHead()?.continuation.resume(returning: .refused(reason: "\(error.code): \(error.message)"))
                default:
                    break
                }
                reason = "\(error.code): \(error.message)"
            } catch {
                reason = "\(error)"
            }
            state.end(reason: reason)
        }
    }

    var isOpen: Bool { state.isOpen }

    func send(_ request: Tally_V1_IncrementRequest, timeout: Duration) async -> DeliveryOutcome {
        await withTaskGroup(of: DeliveryOutcome?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    if let ended = self.state.append(request.requestID, continuation, then: { self.requests.yield(request) }) {
                        continuation.resume(returning: .retry(reason: ended, after: nil))
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            if let first = await group.next(), let outcome = first {
                group.cancelAll()
                return outcome
            }
            // No ack in time (or the caller was cancelled): the stream is stalled; ending it
            // answers every request on it, this one included, with a retry.
            close(reason: "no ack within \(timeout)")
            while let next = await group.next() {
                if let outcome = next { return outcome }
            }
            return .retry(reason: "no ack within \(timeout)", after: nil)
        }
    }

    func close(reason: String = "closed by the client") {
        state.end(reason: reason)
        requests.finish()
        task.cancel()
    }
}

/// The requests a stream owes an answer to, oldest first, and why it ended.
final class StreamState: Sendable {
    private struct State {
        var pending: [(id: String, continuation: CheckedContinuation<DeliveryOutcome, Never>)] = []
        var ended: String?
    }

    private let state = Mutex(State())

    var isOpen: Bool { state.withLock { $0.ended == nil } }

    /// Queues a request for its answer and runs `send` under the lock (so the order on the
    /// wire is the order of `pending`); returns why the stream ended instead, if it has.
    func append(_ id: String, _ continuation: CheckedContinuation<DeliveryOutcome, Never>, then send: () -> Void) -> String? {
        state.withLock { state in
            if let ended = state.ended { return ended }
            state.pending.append((id, continuation))
            send()
            return nil
        }
    }

    func popHead() -> (id: String, continuation: CheckedContinuation<DeliveryOutcome, Never>)? {
        state.withLock { $0.pending.isEmpty ? nil : $0.pending.removeFirst() }
    }

    /// Ends the stream: every request still owed an answer is answered with a retry.
    func end(reason: String) {
        let pending = state.withLock { state in
            if state.ended == nil { state.ended = reason }
            defer { state.pending = [] }
            return state.pending
        }
        for request in pending { request.continuation.resume(returning: .retry(reason: reason, after: nil)) }
    }
}
