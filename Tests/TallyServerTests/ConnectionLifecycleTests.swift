import NIOCore
import NIOHTTP1
import Testing
@testable import TallyServer

/// The idle-timeout and graceful-close rules the fast path keeps for every connection.
@Suite struct ConnectionLifecycleTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/increment"))

    @Test func anIdleConnectionClosesAfterTheTimeoutAndNotBefore() {
        let lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        #expect(lifecycle.firstIdleCheck == start + .seconds(5))
        #expect(lifecycle.idleCheck(now: start + .seconds(4)) == .checkAgain(at: start + .seconds(5)))
        #expect(lifecycle.idleCheck(now: start + .seconds(5)) == .close)
    }

    @Test func activityPushesTheDeadline() {
        var lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        lifecycle.read(head, now: start + .seconds(3))
        lifecycle.read(.end(nil), now: start + .seconds(3))
        #expect(lifecycle.answered(now: start + .seconds(4)) == false)
        #expect(lifecycle.idleCheck(now: start + .seconds(5)) == .checkAgain(at: start + .seconds(9)))
        #expect(lifecycle.idleCheck(now: start + .seconds(9)) == .close)
    }

    @Test func aRequestWaitingForItsAnswerIsNotIdle() {
        var lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        lifecycle.read(head, now: start)
        lifecycle.read(.end(nil), now: start)
        // The log is slow: the client is waiting on us, so the connection stays.
        #expect(lifecycle.idleCheck(now: start + .seconds(60)) == .checkAgain(at: start + .seconds(65)))
    }

    @Test func anAnswerOwedKeepsTheConnectionEvenWithAHalfReadRequestBehindIt() {
        var lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        lifecycle.read(head, now: start)
        lifecycle.read(.end(nil), now: start)
        lifecycle.read(head, now: start)  // pipelined, its body held back while the first waits
        #expect(lifecycle.idleCheck(now: start + .seconds(6)) == .close, "on its own it looks half read")
        #expect(lifecycle.idleCheck(now: start + .seconds(6), answerOwed: true) == .checkAgain(at: start + .seconds(11)))
    }

    @Test func aClientThatStopsMidRequestIsIdle() {
        var lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        lifecycle.read(head, now: start)  // the body never comes (slowloris)
        #expect(lifecycle.idleCheck(now: start + .seconds(5)) == .close)
    }

    @Test func quiescingClosesAfterTheLastAnswer() {
        var lifecycle = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        #expect(lifecycle.quiesce() == true, "nothing in progress: close at once")

        var busy = ConnectionLifecycle(idleTimeout: .seconds(5), now: start)
        busy.read(head, now: start)
        busy.read(.end(nil), now: start)
        busy.read(head, now: start)
        busy.read(.end(nil), now: start)
        #expect(busy.quiesce() == false)
        #expect(busy.answered(now: start) == false, "one answer still owed")
        #expect(busy.answered(now: start) == true)
    }
}
