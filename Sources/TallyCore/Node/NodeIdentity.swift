import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A node's identity: a UUID kept in `<data dir>/node-id`, created on first start.
///
/// The checkpoint row in PostgreSQL is keyed by it, so a restarted node must find the same
/// id, and two data directories must never share one (each has its own log and LSNs).
public struct NodeIdentity: Sendable, Equatable {
    public static let fileName = "node-id"

    /// Where this start got the id from.
    public enum Origin: Sendable, Equatable {
        /// Read from `<data dir>/node-id`.
        case stored
        /// Named by the operator (`--node-id`) for a data directory that had none: a node
        /// that keeps its identity on a new disk, so PostgreSQL may well hold its checkpoint.
        case requested
        /// Drawn at random by this start: no checkpoint can exist for it.
        case generated
    }

    public var id: UUID
    public var origin: Origin

    /// False only for an id this start drew at random. Any other id may have a checkpoint
    /// row, so its LSNs must continue after it, not at 1.
    public var mayHaveCheckpoint: Bool { origin != .generated }

    /// Reads the id from `dataDirectory`, or creates and durably stores one (the requested
    /// id, else a random one). A `node-id` file that exists but cannot be read or does not
    /// hold a UUID is an error: replacing it would give the log a stranger's identity.
    public static func loadOrCreate(dataDirectory: String, requested: UUID? = nil) throws -> NodeIdentity {
        let path = dataDirectory + "/" + fileName
        if let stored = try readStored(path: path) {
            if let requested, requested != stored {
                throw NodeIdentityError.mismatch(path: path, stored: stored, requested: requested)
            }
            return NodeIdentity(id: stored, origin: .stored)
        }
        let id = requested ?? UUID()
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        try DurableFile.write(Data((id.uuidString.lowercased() + "\n").utf8), to: path)
        return NodeIdentity(id: id, origin: requested == nil ? .generated : .requested)
    }

    /// The stored id, nil only when the file does not exist.
    private static func readStored(path: String) throws -> UUID? {
        let bytes: [UInt8]
        switch DurableFile.read(path) {
        case .success(let contents): bytes = contents
        case .failure(let error) where error.code == .ENOENT: return nil
        case .failure(let error): throw NodeIdentityError.unreadable(path: path, reason: error.localizedDescription)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw NodeIdentityError.unreadable(path: path, reason: "not UTF-8 text")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let stored = UUID(uuidString: trimmed) else {
            throw NodeIdentityError.unreadable(path: path, reason: "does not hold a UUID (found \"\(trimmed.prefix(80))\")")
        }
        return stored
    }
}

public enum NodeIdentityError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case mismatch(path: String, stored: UUID, requested: UUID)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot read this node's id from \(path): \(reason). Refusing to start rather than "
                + "replace it: restore the file (it holds the node's UUID), or move the whole data "
                + "directory away to start a new node"
        case .mismatch(let path, let stored, let requested):
            "--node-id \(requested.uuidString.lowercased()) differs from the id in \(path) "
                + "(\(stored.uuidString.lowercased())); a data directory belongs to one node"
        }
    }
}
