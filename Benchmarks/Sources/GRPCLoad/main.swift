import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Synchronization
import TallyProtos

// Usage: GRPCLoad <port> [--streams N] [--batch B] [--window W] [--seconds S] [--warmup S]
//                        [--connections C] [--request-ids]
//
// Opens N `tally.v1.Tally/Increment` streams (spread over C HTTP/2 connections to
// 127.0.0.1:<port>), each sending requests of B increments — fresh random UUID keys, values
// 1…1000 — as fast as acks allow, with at most W requests per stream waiting for their ack.
// After the warm-up it measures for S seconds: acked increments and requests per second,
// the time from writing a request to its ack (p50/p99/p99.9/max), and this process's CPU
// time in that window. It prints `MEASURE start` and `MEASURE end` as the window opens and
// closes (so that a driver can read the server's CPU time over the same window), then one
// line `JSON {…}`. Bounded: the streams stop writing at the end of the window and get at
// most 15 s to drain their acks; it exits 1 if any stream failed.

struct Options {
    var port = 0
    var streams = 4
    var batch = 1_000
    var window = 64
    var seconds = 10.0
    var warmup = 1.0
    var connections = 1
    var requestIDs = false
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> String {
        guard let next = arguments.popFirst() else { fail("\(name) needs a value") }
        return next
    }
    while let argument = arguments.popFirst() {
        switch argument {
        case "--streams": options.streams = Int(value(argument)) ?? 0
        case "--batch": options.batch = Int(value(argument)) ?? 0
        case "--window": options.window = Int(value(argument)) ?? 0
        case "--seconds": options.seconds = Double(value(argument)) ?? 0
        case "--warmup": options.warmup = Double(value(argument)) ?? -1
        case "--connections": options.connections = Int(value(argument)) ?? 0
        case "--request-ids": options.requestIDs = true
        default:
            guard options.port == 0, let port = Int(argument) else { fail("unknown argument \(argument)") }
            options.port = port
        }
    }
    guard options.port > 0, options.streams >= 1, options.batch >= 1, options.window >= 1, options.seconds > 0,
          options.warmup >= 0, options.connections >= 1 else {
        fail("usage: GRPCLoad <port> [--streams N] [--batch B] [--window W] [--seconds S] [--warmup S] [--connections C] [--request-ids]")
    }
    return options
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("GRPCLoad: \(message)\n".utf8))
    exit(2)
}

/// Unbuffered, so that the driver sees each line when it is written.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// wyrand: a fast generator for keys and values (not for anything secret).
struct FastRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// A random version-4 UUID in 8-4-4-4-12 form, without Foundation's formatting cost.
func randomKey(_ random: inout FastRandom) -> String {
    let high = (random.next() & ~0xF000) | 0x4000                                       // version 4
    let low = (random.next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000           // variant 10
    return String(unsafeUninitializedCapacity: 36) { buffer in
        hexDigits.withUnsafeBufferPointer { digits in
            var position = 0
            func put(_ word: UInt64, _ first: Int, _ second: Int) {
                var shift: UInt64 = 60
                for nibble in 0..<16 {
                    if nibble == first || nibble == second {
                        buffer[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    buffer[position] = digits[Int((word >> shift) & 0xF)]
                    position += 1
                    shift &-= 4
                }
            }
            put(high, 8, 12)   // xxxxxxxx-xxxx-4xxx
            buffer[position] = UInt8(ascii: "-")
            position += 1
            put(low, 4, -1)    // yxxx-xxxxxxxxxxxx
        }
        return 36
    }
}

/// A counting semaphore for async code.
final class Slots: Sendable {
    private struct State {
        var free: Int
        var waiters: [CheckedContinuation<Bool, Never>] = []
        var closed = false
    }
    private let state: Mutex<State>
    init(_ capacity: Int) { state = Mutex(State(free: capacity)) }

    func acquire() async -> Bool {
        await withCheckedContinuation { continuation in
            let granted = state.withLock { state -> Bool? in
                if state.closed { return false }
                if state.free > 0 { state.free -= 1; return true }
                state.waiters.append(continuation)
                return nil
            }
            if let granted { continuation.resume(returning: granted) }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if state.waiters.isEmpty { state.free += 1; return nil }
            return state.waiters.removeFirst()
        }
        next?.resume(returning: true)
    }

    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }
}

/// The write instants of a stream's requests waiting for their acks (acks come in order).
final class SentTimes: Sendable {
    private let times = Mutex<(items: [ContinuousClock.Instant], head: Int)>(([], 0))
    func push(_ instant: ContinuousClock.Instant) { times.withLock { $0.items.append(instant) } }
    func pop() -> ContinuousClock.Instant? {
        times.withLock { state in
            guard state.head < state.items.count else { return nil }
            let first = state.items[state.head]
            state.head += 1
            if state.head > 4_096 {
                state.items.removeFirst(state.head)
                state.head = 0
            }
            return first
        }
    }
}

/// What every stream shares: whether to keep writing, whether the window is open, counters.
final class Shared: Sendable {
    let stopping = Atomic(false)
    let measuring = Atomic(false)
    let ackedIncrements = Atomic(0)
    let ackedRequests = Atomic(0)
    let failures = Mutex<[String]>([])
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// One stream: writes while there is room and the run goes on; returns the ack latencies
/// (seconds) of the requests acked inside the measured window.
func runStream(_ tally: Tally_V1_Tally.Client<HTTP2ClientTransport.Posix>, index: Int, options: Options,
               shared: Shared) async -> [Double] {
    let slots = Slots(options.window)
    let sent = SentTimes()
    do {
        return try await tally.increment { writer in
            var random = FastRandom(seed: UInt64(UInt32.random(in: 0...UInt32.max)) << 32 | UInt64(index))
            var number = 0
            while !shared.stopping.load(ordering: .relaxed) {
                guard await slots.acquire() else { break }
                var request = Tally_V1_IncrementRequest()
                request.increments.reserveCapacity(options.batch)
                for _ in 0..<options.batch {
                    var increment = Tally_V1_Increment()
                    increment.key = randomKey(&random)
                    increment.value = Int64(random.next() % 1_000 + 1)
                    request.increments.append(increment)
                }
                if options.requestIDs {
                    request.requestID = "s\(index)-\(number)-\(random.next())"
                }
                number += 1
                sent.push(.now)
                try await writer.write(request)
            }
        } onResponse: { response in
            var latencies: [Double] = []
            do {
                for try await ack in response.messages {
                    let now = ContinuousClock.now
                    let started = sent.pop()
                    slots.release()
                    if shared.measuring.load(ordering: .relaxed) {
                        shared.ackedIncrements.add(Int(ack.count), ordering: .relaxed)
                        shared.ackedRequests.add(1, ordering: .relaxed)
                        if let started { latencies.append(seconds(now - started)) }
                    }
                }
            } catch {
                slots.close()
                throw error
            }
            slots.close()
            return latencies
        }
    } catch {
        shared.failures.withLock { $0.append("stream \(index): \(error)") }
        shared.stopping.store(true, ordering: .relaxed)
        return []
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p / 100).rounded(.down)))]
}

let options = parseOptions()
let shared = Shared()
let clients = try (0..<options.connections).map { _ in
    GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: options.port),
                                             transportSecurity: .plaintext))
}

let (latencies, windowSeconds, cpu) = try await withThrowingTaskGroup(of: Void.self) { connections in
    for client in clients {
        connections.addTask { try await client.runConnections() }
    }
    defer { for client in clients { client.beginGracefulShutdown() } }
    return await withTaskGroup(of: [Double].self) { streams in
        for index in 0..<options.streams {
            let tally = Tally_V1_Tally.Client(wrapping: clients[index % clients.count])
            streams.addTask { await runStream(tally, index: index, options: options, shared: shared) }
        }
        try? await Task.sleep(for: .seconds(options.warmup))
        shared.measuring.store(true, ordering: .relaxed)
        let cpuStart = cpuSeconds()
        let start = ContinuousClock.now
        say("MEASURE start")
        try? await Task.sleep(for: .seconds(options.seconds))
        shared.measuring.store(false, ordering: .relaxed)
        let window = seconds(.now - start)
        let cpu = cpuSeconds() - cpuStart
        say("MEASURE end")
        shared.stopping.store(true, ordering: .relaxed)
        // Drain: every stream finishes once its in-flight requests are acked; bounded.
        let drained = Task {
            try? await Task.sleep(for: .seconds(15))
            if !Task.isCancelled {
                FileHandle.standardError.write(Data("GRPCLoad: streams did not drain within 15 s\n".utf8))
                exit(1)
            }
        }
        var all: [Double] = []
        for await latencies in streams { all += latencies }
        drained.cancel()
        return (all.sorted(), window, cpu)
    }
}

let failures = shared.failures.withLock { $0 }
let increments = Double(shared.ackedIncrements.load(ordering: .relaxed))
let requests = Double(shared.ackedRequests.load(ordering: .relaxed))
func ms(_ value: Double) -> String { value.isNaN ? "null" : String(format: "%.3f", value * 1000) }
func escaped(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        .replacingOccurrences(of: "\n", with: " ")
}
say("JSON {\"increments_per_second\": \(Int(increments / windowSeconds)), \"requests_per_second\": \(Int(requests / windowSeconds)), "
      + "\"streams\": \(options.streams), \"batch\": \(options.batch), \"window\": \(options.window), \"connections\": \(options.connections), "
      + "\"request_ids\": \(options.requestIDs), \"seconds\": \(String(format: "%.3f", windowSeconds)), "
      + "\"p50_ms\": \(ms(percentile(latencies, 50))), \"p99_ms\": \(ms(percentile(latencies, 99))), "
      + "\"p999_ms\": \(ms(percentile(latencies, 99.9))), \"max_ms\": \(ms(latencies.last ?? .nan)), "
      + "\"client_cpu_seconds\": \(String(format: "%.3f", cpu)), \"errors\": \(failures.count), "
      + "\"first_error\": \(failures.first.map { "\"\(escaped($0))\"" } ?? "null")}")
exit(failures.isEmpty ? 0 : 1)
