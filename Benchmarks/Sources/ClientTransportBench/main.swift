import Foundation
import Synchronization
import TallyClient
import TallyClientGRPC

// The client's two transports against one real daemon, in alternating rounds of the same
// run: HTTP (`POST /increments`, async-http-client) and the gRPC `Increment` stream.
// Per round: 4 callers increment 10,000 keys as fast as the client takes them (`.wait`, so
// the client runs at the daemon's pace); the figures are delivered lines per second, CPU per
// delivered line in this process (client and callers) and in the daemon, and the time from
// sending a batch to its durable answer.
//
// usage: ClientTransportBench <tally binary> <database url> [seconds per round] [rounds]

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    print("usage: ClientTransportBench <tally binary> <database url> [seconds per round] [rounds]")
    exit(2)
}
let secondsPerRound = arguments.count > 3 ? Double(arguments[3]) ?? 5 : 5
let rounds = arguments.count > 4 ? Int(arguments[4]) ?? 3 : 3

/// Times every send of the wrapped transport.
final class TimedTransport: TallyTransport {
    let inner: any TallyTransport
    private let samples = Mutex<[Double]>([])
    private let delivered = Atomic(0)

    init(_ inner: any TallyTransport) {
        self.inner = inner
    }

    var milliseconds: [Double] { samples.withLock { $0 } }
    /// Lines of the batches the daemon acknowledged.
    var deliveredLines: Int { delivered.load(ordering: .relaxed) }

    func send(_ batch: IncrementBatch, timeout: Duration) async throws -> DeliveryOutcome {
        let started = ContinuousClock.now
        let outcome = try await inner.send(batch, timeout: timeout)
        let elapsed = ContinuousClock.now - started
        samples.withLock { $0.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3) }
        if outcome == .delivered { delivered.add(batch.lines.count, ordering: .relaxed) }
        return outcome
    }

    func shutdown() async {
        await inner.shutdown()
    }
}

func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = bind(fd, $0, length) }
    }
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// CPU seconds (user + system) of a process, from /proc.
func cpuSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return (Double(fields[11]) ?? 0) / 100 + (Double(fields[12]) ?? 0) / 100
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

let httpPort = freePort()
let grpcPort = freePort()
let dataDirectory = NSTemporaryDirectory() + "tally-transport-bench-\(UUID().uuidString.prefix(8))"
let daemon = Process()
daemon.executableURL = URL(fileURLWithPath: arguments[1])
daemon.arguments = ["serve", "--listen", "127.0.0.1:\(httpPort)", "--grpc-listen", "127.0.0.1:\(grpcPort)",
                    "--data-dir", dataDirectory, "--database-url", arguments[2], "--log-level", "warning"]
try daemon.run()
defer {
    daemon.terminate()
    daemon.waitUntilExit()
    try? FileManager.default.removeItem(atPath: dataDirectory)
}
for _ in 0..<100 {
    if (try? String(contentsOf: URL(string: "http://127.0.0.1:\(httpPort)/readyz")!, encoding: .utf8)) != nil { break }
    usleep(100_000)
}

/// Four callers increment as fast as the client takes it for `seconds`, then stop.
nonisolated func load(_ client: TallyClient, keys: [UUID], callers: Int, seconds: Double) async {
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<callers {
            group.addTask {
                var index = Int.random(in: 0..<keys.count)
                while !Task.isCancelled {
                    await client.increment(key: keys[index % keys.count], by: 1)
                    index &+= 7_919
                }
            }
        }
        try? await Task.sleep(for: .seconds(seconds))
        group.cancelAll()
    }
}

let keys = (0..<10_000).map { _ in UUID() }
print("transport  round  lines/s   increments/s  client CPU µs/line  daemon CPU µs/line  send p50 ms  send p99 ms")
var totals: [String: (lines: Double, seconds: Double)] = [:]
for round in 1...rounds {
    let order = round % 2 == 1 ? ["http", "grpc"] : ["grpc", "http"]
    for name in order {
        var configuration = TallyClientConfiguration(url: "http://127.0.0.1:\(httpPort)")
        configuration.whenFull = .wait
        configuration.capacityLines = 20_000
        configuration.flushIntervalSeconds = 0.05
        let inner: any TallyTransport = name == "grpc" ? try GRPCTransport(host: "127.0.0.1", port: grpcPort)
            : try HTTPTransport(url: configuration.url)
        let timed = TimedTransport(inner)
        let client = try TallyClient(configuration: configuration, transport: timed)
        let running = Task { try await client.run() }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let clientCPUBefore = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        let daemonCPUBefore = cpuSeconds(pid: daemon.processIdentifier)
        let started = ContinuousClock.now
        await load(client, keys: keys, callers: 4, seconds: secondsPerRound)
        let report = await client.shutdown()
        try await running.value
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let clientCPU = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6 - clientCPUBefore
        let daemonCPU = cpuSeconds(pid: daemon.processIdentifier) - daemonCPUBefore
        let linesSent = Double(timed.deliveredLines)
        totals[name, default: (0, 0)].lines += linesSent
        totals[name, default: (0, 0)].seconds += seconds
        let samples = timed.milliseconds
        print(String(format: "%-9@  %5d  %8.0f  %12.0f  %18.2f  %18.2f  %11.2f  %11.2f", name as NSString, round,
                     linesSent / seconds, Double(report.statistics.sent) / seconds, clientCPU * 1e6 / max(1, linesSent),
                     daemonCPU * 1e6 / max(1, linesSent), percentile(samples, 0.5), percentile(samples, 0.99)))
    }
}
let http = totals["http"].map { $0.lines / $0.seconds } ?? 0
let grpc = totals["grpc"].map { $0.lines / $0.seconds } ?? 0
print(String(format: "all rounds: http %.0f lines/s, grpc %.0f lines/s, grpc/http %.2f", http, grpc, grpc / max(1, http)))
