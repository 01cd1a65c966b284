#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Names and their keys: a counted thing with a readable name ("GET /users/{id}") gets a
/// UUID key that every process derives alike, with no table to look up and no coordination.
///
/// The key is the UUID version 5 (RFC 9562: SHA-1 of namespace ‖ UTF-8 name) of the name in
/// ``namespace``, a fixed UUID of Tally's own. Anyone can compute it — `tally key "GET
/// /users/{id}"`, Python's `uuid.uuid5(namespace, name)` — and a name keeps its key forever,
/// so a renamed route is a new counter, never a mix of two.
public enum TallyKeyName {
    /// Tally's namespace for key names: `8cba8586-a68d-57a3-bee2-c6bf530c3a67`, itself the
    /// UUIDv5 of `tally:key-names` in RFC 9562's URL namespace. Fixed: changing it would give
    /// every named counter a new key.
    public static let namespace = UUID(uuidString: "8cba8586-a68d-57a3-bee2-c6bf530c3a67")!

    /// Names are at most this many characters (Unicode scalars), as `tally_key_names` holds them.
    public static let maxNameCharacters = 200

    /// The key of `name` in ``namespace``.
    public static func key(for name: String) -> UUID {
        key(for: name, in: namespace)
    }

    /// The UUIDv5 of `name` in `namespace` (RFC 9562, section 5.5).
    public static func key(for name: String, in namespace: UUID) -> UUID {
        var hash = SHA1()
        withUnsafeBytes(of: namespace.uuid) { hash.update($0) }
        hash.update(name.utf8)
        var bytes = hash.finish()
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // the RFC 9562 variant
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    /// Why `name` cannot be registered, or nil when it can: 1 to ``maxNameCharacters``
    /// characters, none of them a control character (a name is printed in reports and logs).
    public static func problem(with name: String) -> String? {
        let count = name.unicodeScalars.count
        guard count >= 1 else { return "a name must not be empty" }
        guard count <= maxNameCharacters else { return "a name is at most \(maxNameCharacters) characters, this one has \(count)" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            return "a name must not contain control characters"
        }
        return nil
    }

    /// The name a request counter gives an HTTP route: `"METHOD template"`, e.g.
    /// `"GET /users/{id}"`. The template, never the raw path, keeps the number of keys bounded.
    public static func route(method: String, template: String) -> String {
        method.uppercased() + " " + template
    }
}
