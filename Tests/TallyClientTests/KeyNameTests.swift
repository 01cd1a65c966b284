import Foundation
import Testing
@testable import TallyKeyNames

/// UUIDv5 keys pinned to vectors computed by another implementation (Python's `uuid.uuid5`),
/// so that every client, the `tally` tool and any other language agree on a name's key.
struct KeyNameTests {
    @Test func sha1MatchesFIPSVectors() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(SHA1.digest(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.digest([UInt8]())) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    @Test func keysAreUUIDv5InTallysNamespace() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "tally:key-names")
        #expect(TallyKeyName.namespace == TallyKeyName.key(for: "tally:key-names",
                                                          in: UUID(uuidString: "6ba7b811-9dad-11d1-80b4-00c04fd430c8")!))
        let vectors = [
            ("GET /users/{id}", "ccb7b5d9-cef9-5d9b-955e-46cd2efda614"),
            ("POST /increments", "795878fa-7c1b-5ce7-8ca9-db44808a8fd2"),
            ("/tally.v1.Tally/Increment", "d34a347f-f1cd-5b8a-9210-ddbdd7a195be"),
            ("GET /", "635f4e44-0457-5f2e-b798-647488560f6b"),
        ]
        for (name, key) in vectors {
            #expect(TallyKeyName.key(for: name).uuidString.lowercased() == key, "\(name)")
        }
        // RFC 9562's own example namespace (DNS) and Python's docs: uuid5(NAMESPACE_DNS, "python.org").
        #expect(TallyKeyName.key(for: "python.org", in: UUID(uuidString: "6ba7b810-9dad-11d1-80b4-00c04fd430c8")!)
                    .uuidString.lowercased() == "886313e1-3b8a-5372-9b90-0c9aee199e5d")
    }

    @Test func namesAreBounded() {
        #expect(TallyKeyName.problem(with: "GET /users/{id}") == nil)
        #expect(TallyKeyName.problem(with: "") != nil)
        #expect(TallyKeyName.problem(with: String(repeating: "é", count: 200)) == nil)
        #expect(TallyKeyName.problem(with: String(repeating: "x", count: 201)) != nil)
        #expect(TallyKeyName.problem(with: "GET /a\nb") != nil)
        #expect(TallyKeyName.route(method: "get", template: "/users/{id}") == "GET /users/{id}")
    }
}
