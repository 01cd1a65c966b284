import Foundation
import Testing

/// A real directory behind `faultfs` (Tests/Tools/faultfs), a passthrough FUSE filesystem
/// whose answers a test switches at run time: `ok`, `enospc` (a full disk: growing a file or
/// creating one fails, overwriting in place works), `eio-fsync-files` (every fsync and
/// fdatasync of a file fails with EIO). Everything else is the real kernel and disk below it.
final class FaultyDisk {
    let backing = TemporaryDirectory()
    let mountPoint: String
    private let control: String
    private let process = Process()
    private let outputPath: String

    static var binary: String {
        guard let path = ProcessInfo.processInfo.environment["TALLY_TEST_FAULTFS"], !path.isEmpty else {
            fatalError("TALLY_TEST_FAULTFS is not set: run the tests with `make test`, which builds faultfs")
        }
        return path
    }

    init() async throws {
        mountPoint = backing.path + ".mnt"
        control = backing.path + ".control"
        outputPath = backing.path + ".faultfs.log"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        try "ok\n".write(toFile: control, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [backing.path, mountPoint, control, "-f"]
        let output = FileHandle(forWritingAtPath: outputPath)!
        process.standardOutput = output
        process.standardError = output
        try process.run()
        for _ in 0..<100 {
            if isMounted { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("faultfs did not mount: \((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")")
    }

    private var isMounted: Bool {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first == Substring(mountPoint) }
    }

    /// Switches the filesystem's answers from the next operation on.
    func set(_ mode: String) throws {
        try "\(mode)\n".write(toFile: control, atomically: true, encoding: .utf8)
    }

    /// faultfs' counters (`injected_write_enospc`, `fdatasyncs`, …).
    var counters: [String: String] {
        let text = (try? String(contentsOfFile: control + ".status", encoding: .utf8)) ?? ""
        return Dictionary(text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { $1 })
    }

    func counter(_ name: String) -> Int { Int(counters[name] ?? "") ?? 0 }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)  // faultfs unmounts on SIGTERM
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                _ = system("umount -l '\(mountPoint)' 2>/dev/null")
            }
        }
        try? FileManager.default.removeItem(atPath: mountPoint)
        try? FileManager.default.removeItem(atPath: control)
        try? FileManager.default.removeItem(atPath: control + ".status")
        try? FileManager.default.removeItem(atPath: outputPath)
    }
}
