import ArgumentParser

@main
struct Tally: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tally",
        abstract: "A durable counter daemon and the tools to inspect its write-ahead log.",
        subcommands: [ServeCommand.self, DumpCommand.self, VerifyCommand.self, RecoverCommand.self, MigrateCommand.self,
                      ReportCommand.self, KeyCommand.self]
    )
}
