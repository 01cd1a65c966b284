import Foundation
import Testing
import TallyCore
import TallyLog

@Suite struct NodeIdentityTests {
    @Test func anIdIsCreatedOnceAndThenRead() throws {
        let dir = TemporaryDirectory()
        let created = try NodeIdentity.loadOrCreate(dataDirectory: dir.path)
        #expect(created.origin == .generated && !created.mayHaveCheckpoint)
        let read = try NodeIdentity.loadOrCreate(dataDirectory: dir.path)
        #expect(read.id == created.id && read.origin == .stored)
    }

    @Test func aRequestedIdOnAFreshDirectoryMayAlreadyHaveACheckpoint() throws {
        let dir = TemporaryDirectory()
        let id = UUID()
        let identity = try NodeIdentity.loadOrCreate(dataDirectory: dir.path, requested: id)
        #expect(identity.id == id && identity.origin == .requested)
        #expect(identity.mayHaveCheckpoint)
        #expect(throws: NodeIdentityError.self) { try NodeIdentity.loadOrCreate(dataDirectory: dir.path, requested: UUID()) }
    }

    @Test(arguments: ["not a uuid\n", "\u{FF}\u{FE}"])
    func aNodeIdFileThatCannotBeReadRefusesTheStartAndIsKept(_ content: String) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/" + NodeIdentity.fileName
        let bytes: [UInt8] = content == "\u{FF}\u{FE}" ? [0xFF, 0xFE, 0x00] : Array(content.utf8)
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        #expect(throws: NodeIdentityError.self) { try NodeIdentity.loadOrCreate(dataDirectory: dir.path) }
        #expect(FileManager.default.contents(atPath: path) == Data(bytes), "never replaced")
    }

    @Test func aNodeIdThatIsNotAReadableFileRefusesTheStart() throws {
        let dir = TemporaryDirectory()
        // Root reads any file, so unreadability is shown with a directory in its place (EISDIR).
        try FileManager.default.createDirectory(atPath: dir.path + "/" + NodeIdentity.fileName, withIntermediateDirectories: false)
        #expect(throws: NodeIdentityError.self) { try NodeIdentity.loadOrCreate(dataDirectory: dir.path) }
    }
}

@Suite struct CheckpointFenceTests {
    @Test func marksSurviveAReopenAndOnlyRise() throws {
        let dir = TemporaryDirectory()
        let fence = try CheckpointFence(dataDirectory: dir.path)
        #expect(fence.marks == nil)
        try fence.recordAttempt(50)
        try fence.recordConfirmed(40)
        try fence.recordAttempt(30)  // never lowers `attempted`
        let reopened = try CheckpointFence(dataDirectory: dir.path)
        #expect(reopened.marks == CheckpointFence.Marks(attempted: 50, confirmed: 40))
        try reopened.recordConfirmed(20)  // confirmed follows PostgreSQL, even backwards
        #expect(try CheckpointFence(dataDirectory: dir.path).marks == CheckpointFence.Marks(attempted: 50, confirmed: 20))
        try reopened.reset()
        #expect(try CheckpointFence(dataDirectory: dir.path).marks == CheckpointFence.Marks(attempted: 0, confirmed: 0))
    }

    @Test func anUpdateOverwritesTheFileInPlaceAndATornOneIsCaught() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/" + CheckpointFence.fileName
        let fence = try CheckpointFence(dataDirectory: dir.path)
        try fence.recordAttempt(7)
        let inode = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        try fence.recordAttempt(123_456)
        try fence.recordConfirmed(123_456)
        // In place: the same file (no temporary file and rename, which would need a new
        // block on a full disk), one sector.
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int == inode)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == 512)
        #expect(try CheckpointFence(dataDirectory: dir.path).marks == CheckpointFence.Marks(attempted: 123_456, confirmed: 123_456))

        // A torn overwrite: part of the old digits under the new checksum.
        let digit = bytes.firstIndex(of: UInt8(ascii: "4"))!
        bytes[digit] = UInt8(ascii: "9")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: CheckpointFenceError.self) { try CheckpointFence(dataDirectory: dir.path) }
    }

    @Test func aFenceWrittenBeforeTheChecksumLineStillReads() throws {
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.path + "/" + CheckpointFence.fileName,
                                       contents: Data("# old\nattempted 9\nconfirmed 8\n".utf8))
        let fence = try CheckpointFence(dataDirectory: dir.path)
        #expect(fence.marks == CheckpointFence.Marks(attempted: 9, confirmed: 8))
        try fence.recordAttempt(10)
        #expect(try CheckpointFence(dataDirectory: dir.path).marks == CheckpointFence.Marks(attempted: 10, confirmed: 8))
    }

    @Test(arguments: ["attempted 5\n", "attempted x\nconfirmed 1\n", "attempted 1\nconfirmed 2\n", "attempted 1\nconfirmed 1\nextra 3\n"])
    func aMalformedFenceIsAnErrorNotAGuess(_ text: String) throws {
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.path + "/" + CheckpointFence.fileName, contents: Data(text.utf8))
        #expect(throws: CheckpointFenceError.self) { try CheckpointFence(dataDirectory: dir.path) }
    }
}
