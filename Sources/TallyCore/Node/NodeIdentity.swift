import Foundation

/// A node's identity: a UUID kept in `<data dir>/node-id`, created on first start.
///
/// The checkpoint row in PostgreSQL is keyed by it, so a restarted node must find the same
/// id, and two data directories must never share one (each has its own log and LSNs).
public struct NodeIdentity: Sendable, Equatable {
    public static let fileName = "node-id"

    public var id: UUID
    /// True when this start created the id (the node has never checkpointed).
    public var isNew: Bool

    /// Reads the id from `dataDirectory`, or creates and durably stores a new one.
    /// With `requested` set, the stored id must match it (or is created with it).
    public static func loadOrCreate(dataDirectory: String, requested: UUID? = nil) throws -> NodeIdentity {
        let path = dataDirectory + "/" + fileName
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let stored = UUID(uuidString: trimmed) else {
                throw NodeIdentityError.unreadable(path: path, content: trimmed)
            }
            if let requested, requested != stored {
                throw NodeIdentityError.mismatch(path: path, stored: stored, requested: requested)
            }
            return NodeIdentity(id: stored, isNew: false)
        }
        let id = requested ?? UUID()
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        try DurableFile.write(Data((id.uuidString.lowercased() + "\n").utf8), to: path)
        return NodeIdentity(id: id, isNew: true)
    }
}

public enum NodeIdentityError: Error, CustomStringConvertible {
    case unreadable(path: String, content: String)
    case mismatch(path: String, stored: UUID, requested: UUID)

    public var description: String {
        switch self {
        case .unreadable(let path, let content):
            "\(path) does not hold a UUID (found \"\(content)\")"
        case .mismatch(let path, let stored, let requested):
            "--node-id \(requested.uuidString.lowercased()) differs from the id in \(path) "
                + "(\(stored.uuidString.lowercased())); a data directory belongs to one node"
        }
    }
}
