import ArgumentParser
import Foundation
import Logging

@main
struct ExampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally-example",
        abstract: "A small Hummingbird app that counts its requests by route in Tally.",
        subcommands: [Serve.self, Demo.self],
        defaultSubcommand: Serve.self
    )
}

/// `TALLY_URL`, or the daemon `make run` starts.
func defaultTallyURL() -> String {
    ProcessInfo.processInfo.environment["TALLY_URL"] ?? "http://127.0.0.1:8080"
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the app until SIGTERM/SIGINT, then flush the counts.")

    @Option(help: "Address to listen on (loopback only by default).")
    var listen = "127.0.0.1:8081"

    @Option(help: "The Tally daemon (default: $TALLY_URL or http://127.0.0.1:8080).")
    var tallyURL = defaultTallyURL()

    @Flag(help: "Serve without the request counter (the benchmark's reference).")
    var noCounter = false

    func run() async throws {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen must be HOST:PORT") }
        var logger = Logger(label: "tally-example")
        logger.logLevel = .notice
        let host = String(parts[0])
        try await ExampleApp.makeGroup(host: host, port: port, tallyURL: noCounter ? nil : tallyURL, logger: logger,
                                       onListening: { port in print("listening on \(host):\(port)") }).run()
    }
}
