import GRPCCore
import Synchronization
import TallyCore
import TallyLog
import TallyProtos

/// One `Increment` stream: requests are validated and submitted as they arrive, up to
/// `window` of them waiting for their fdatasync at once (so that one stream's requests share
/// group commits), and acked strictly in order, each only once it is durable.
///
/// Bounded: at most `window` requests are in flight; beyond that the stream stops pulling
/// requests, and HTTP/2 flow control stops the client. A client that does not read its acks
/// stops the stream the same way. A bad request ends the stream after the acks of the
/// requests before it have been written (they are durable and counted); nothing of it is
/// stored. A request the log refuses ends the stream with UNAVAILABLE after the acks
/// before it; requests behind it that were already submitted may still be stored, and
/// are not acked: a client retries them with their `request_id` to count them once.
struct IncrementStream: Sendable {
    let ingest: Ingest
    let intake: IncrementRequestIntake
    let window: Int
    /// Called for each request message before it is taken (the rate limit).
    let admit: @Sendable () throws(RPCError) -> Void
    let onAcknowledged: @Sendable (Int, Duration) -> Void

    func run(_ requests: RPCAsyncSequence<Tally_V1_IncrementRequest, any Error>,
             writer: RPCWriter<Tally_V1_IncrementAck>) async throws {
        precondition(window >= 1, "a stream has room for at least one request in flight")
        let slots = AsyncSlots(capacity: window)
        let (pending, queue) = AsyncStream.makeStream(of: PendingAck.self)
        // Each child returns the error that should end the stream, if any: the reader's (a
        // bad request) only once the writer has written the acks before it.
        let failure = try await withThrowingTaskGroup(of: (any Error)?.self) { group in
            // Acks, in request order, each once its request is durable.
            group.addTask {
                defer { slots.close() }  // a reader waiting for room must not wait forever
                for await ack in pending {
                    let outcome = await ack.outcome.value
                    slots.release()
                    if let error = RPCStatus.notStored(outcome, index: ack.index) { throw error }
                    guard case .stored(let first, let last, _) = outcome else { continue }
                    onAcknowledged(Int(last - first + 1), .now - ack.started)
                    try await writer.write(.with {
                        $0.firstLsn = first
                        $0.lastLsn = last
                        $0.count = UInt32(last - first + 1)
                        $0.requestID = ack.requestID
                    })
                }
                return nil
            }
            // Requests, validated and submitted as they come, while there is room.
            group.addTask {
                defer { queue.finish() }
                do {
                    var index = 0
                    for try await request in requests {
                        try admit()
                        let (records, tag) = try intake.records(of: request, index: index)
                        guard await slots.acquire() else { return nil }  // the writer ended
                        let ack = PendingAck(index: index, requestID: request.requestID, started: .now)
                        ingest.submit(records, tag: tag) { ack.outcome.resolve($0) }
                        queue.yield(ack)
                        index += 1
                    }
                    return nil
                } catch {
                    return error
                }
            }
            var failure: (any Error)?
            for try await result in group {
                if let result { failure = result }
            }
            return failure
        }
        if let failure { throw failure }
    }
}

/// A request submitted and not yet acked.
private struct PendingAck: Sendable {
    let index: Int
    let requestID: String
    let started: ContinuousClock.Instant
    let outcome = OneShot<IngestOutcome>()
}

/// A value set once, awaited once.
final class OneShot<Value: Sendable>: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Value, Never>)
        case resolved(Value)
    }

    private let state = Mutex(State.empty)

    func resolve(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            if case .waiting(let continuation) = state {
                state = .resolved(value)
                return continuation
            }
            state = .resolved(value)
            return nil
        }
        waiter?.resume(returning: value)
    }

    var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Value? in
                    if case .resolved(let value) = state { return value }
                    state = .waiting(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// A counting semaphore for async code: `acquire` suspends while none is free.
final class AsyncSlots: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Bool, Never>] = []
        var closed = false
    }

    private let state: Mutex<State>

    init(capacity: Int) {
        state = Mutex(State(free: capacity))
    }

    /// Takes a slot, waiting while none is free; false once the slots are closed.
    func acquire() async -> Bool {
        await withCheckedContinuation { continuation in
            let granted = state.withLock { state -> Bool? in
                if state.closed { return false }
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return nil
            }
            if let granted { continuation.resume(returning: granted) }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume(returning: true)
    }

    /// Wakes every waiter with false, and refuses later acquires.
    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }
}
