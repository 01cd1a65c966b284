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

    @Test(arguments: ["attempted 5\n", "attempted x\nconfirmed 1\n", "attempted 1\nconfirmed 2\n", "attempted 1\nconfirmed 1\nextra 3\n"])
    func aMalformedFenceIsAnErrorNotAGuess(_ text: String) throws {
        let dir = TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.path + "/" + CheckpointFence.fileName, contents: Data(text.utf8))
        #expect(throws: CheckpointFenceError.self) { try CheckpointFence(dataDirectory: dir.path) }
    }
}
