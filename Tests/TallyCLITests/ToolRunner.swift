import Foundation

/// Runs the built `tally` binary as an operator would, capturing its output.
struct ToolRun {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

enum Tool {
    /// The `tally` executable next to the test bundle in the build products directory.
    static let path: String = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("tally").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/tally"
        precondition(FileManager.default.isExecutableFile(atPath: fallback), "the tally binary was not built")
        return fallback
    }()

    static func run(_ arguments: [String]) throws -> ToolRun {
        try runExternal(path, arguments)
    }

    /// Runs any program to completion, capturing its output; `environment` adds to ours.
    static func runExternal(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ToolRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read before waiting so a large output cannot fill the pipe and stall the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ToolRun(status: process.terminationStatus,
                       stdout: String(decoding: stdout, as: UTF8.self),
                       stderr: String(decoding: stderr, as: UTF8.self))
    }
}

final class TemporaryDirectory {
    let path: String
    init() {
        var template = Array((NSTemporaryDirectory() + "tally-cli-XXXXXX").utf8CString)
        path = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!)! })
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
