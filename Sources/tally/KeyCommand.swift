import ArgumentParser
import TallyKeyNames

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print the key Tally's clients use for a name, e.g. \"GET /users/{id}\".",
        discussion: """
            The key is the UUIDv5 of the name in Tally's fixed namespace \
            \(TallyKeyName.namespace.uuidString.lowercased()), so every process derives the same key \
            for the same name without asking anyone. TallyRequestCounter names an HTTP route \
            "METHOD /template" and a gRPC method by its full name ("/package.Service/Method").
            """
    )

    @Argument(help: "The name, e.g. \"GET /users/{id}\" (quote it).")
    var names: [String]

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("give at least one name") }
        for name in names {
            if let problem = TallyKeyName.problem(with: name) { throw ValidationError("\"\(name)\": \(problem)") }
        }
    }

    func run() throws {
        if names.count == 1 {
            print(TallyKeyName.key(for: names[0]).uuidString.lowercased())
        } else {
            for name in names { print(TallyKeyName.key(for: name).uuidString.lowercased() + "  " + name) }
        }
    }
}
