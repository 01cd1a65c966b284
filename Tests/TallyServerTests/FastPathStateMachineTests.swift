import NIOCore
import NIOHTTP1
import Testing
@testable import TallyServer

/// The fast path's connection rules, without sockets: feed events, check the actions.
@Suite struct FastPathStateMachineTests {
    private func machine() -> FastPathStateMachine {
        FastPathStateMachine(lifecycle: ConnectionLifecycle(idleTimeout: .seconds(30))) { head in
            head.method == .POST && (head.uri == "/increment" || head.uri == "/increments")
        }
    }

    private func head(_ method: HTTPMethod, _ uri: String, close: Bool = false, version: HTTPVersion = .http1_1) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: version, method: method, uri: uri)
        if close { head.headers.add(name: "connection", value: "close") }
        return head
    }

    private func taken(_ kind: TakenRequest.Kind = .single) -> TakenRequest {
        TakenRequest(kind: kind, reply: Reply(kind: kind, started: .now, version: .http1_1, closeAfterAnswer: false),
                     idempotencyKey: nil, maxBodyBytes: 16, refusal: nil)
    }

    @Test func anIngestRequestIsTakenBodyAndAllThenSubmitted() {
        var m = machine()
        let request = head(.POST, "/increments")
        #expect(m.received(.head(request)) == .take(request))
        m.startTaking(taken(.bulk))
        #expect(m.received(.body(ByteBuffer(string: "abc"))) == .none)
        guard case .submit(let submitted) = m.received(.end(nil)) else { Issue.record("no submit"); return }
        #expect(submitted.body == ByteBuffer(string: "abc") && submitted.kind == .bulk)
        #expect(m.takenInFlight)
    }

    @Test func aBodyOverTheRoutesLimitBecomesA413() {
        var m = machine()
        _ = m.received(.head(head(.POST, "/increment")))
        m.startTaking(taken())
        _ = m.received(.body(ByteBuffer(string: String(repeating: "x", count: 17))))
        guard case .submit(let submitted) = m.received(.end(nil)) else { Issue.record("no submit"); return }
        #expect(submitted.refusal?.status == .contentTooLarge && submitted.body == nil)
    }

    @Test func whatArrivesBehindATakenRequestWaitsAndReplaysInOrder() {
        var m = machine()
        _ = m.received(.head(head(.POST, "/increment")))
        m.startTaking(taken())
        _ = m.received(.end(nil))
        let routed = head(.GET, "/healthz")
        #expect(m.received(.head(routed)) == .none, "held: its answer must not overtake")
        #expect(m.received(.end(nil)) == .none)
        #expect(m.inputClosed() == .none, "a FIN waits for the answers owed")
        #expect(m.readRequested() == .none, "reads pause while anything is held")
        #expect(m.heldCount == 3)
        #expect(m.answeringTaken(closeAfterAnswer: false) == .continueAfterWriting)
        #expect(m.nextHeld() == .forward(.head(routed)))
        #expect(m.nextHeld() == .forward(.end(nil)))
        #expect(m.nextHeld() == .forwardInputClosed)
        #expect(m.nextHeld() == nil)
        let resumes = m.resumeReadingIfDrained()
        #expect(resumes)
    }

    @Test func anIngestRequestBehindARoutedOneIsRoutedToo() {
        var m = machine()
        let routed = head(.GET, "/counts/x")
        #expect(m.received(.head(routed)) == .forward(.head(routed)))
        #expect(m.received(.end(nil)) == .forward(.end(nil)))
        let ingest = head(.POST, "/increment")
        #expect(m.received(.head(ingest)) == .forward(.head(ingest)), "taking it would answer before the routed request")
        let closesAfter = m.routedAnswerEnded()
        #expect(!closesAfter)
    }

    @Test func nothingAfterARoutedConnectionCloseIsTakenOrPassedOn() {
        var m = machine()
        let closing = head(.GET, "/healthz", close: true)
        #expect(m.received(.head(closing)) == .forward(.head(closing)))
        #expect(m.received(.end(nil)) == .forward(.end(nil)))
        #expect(m.received(.head(head(.POST, "/increment"))) == .none, "no answer to it could be written")
        #expect(m.received(.body(ByteBuffer(string: "{}"))) == .none)
        #expect(m.received(.end(nil)) == .none)
    }

    @Test func aTakenRequestThatAsksToCloseDropsWhatIsHeldAndClosesAfterItsAnswer() {
        var m = machine()
        _ = m.received(.head(head(.POST, "/increment", close: true)))
        m.startTaking(taken())
        _ = m.received(.end(nil))
        _ = m.received(.head(head(.POST, "/increment")))
        #expect(m.answeringTaken(closeAfterAnswer: true) == .closeAfterWriting)
        #expect(m.nextHeld() == nil && m.closing)
        #expect(m.received(.head(head(.POST, "/increment"))) == .none)
        #expect(m.readRequested() == .none)
    }

    @Test func tooMuchHeldClosesTheConnection() {
        var m = machine()
        _ = m.received(.head(head(.POST, "/increment")))
        m.startTaking(taken())
        _ = m.received(.end(nil))
        for _ in 0..<FastPathStateMachine.maxHeldParts { _ = m.received(.body(ByteBuffer(string: "x"))) }
        #expect(m.received(.body(ByteBuffer(string: "x"))) == .close)
    }

    @Test func quiesceClosesAfterTheLastAnswer() {
        var m = machine()
        let closesNow = m.quiesce()
        #expect(closesNow, "nothing in progress: close now")
        var busy = machine()
        _ = busy.received(.head(head(.POST, "/increment")))
        busy.startTaking(taken())
        _ = busy.received(.end(nil))
        let busyClosesNow = busy.quiesce()
        #expect(!busyClosesNow)
        #expect(busy.answeringTaken(closeAfterAnswer: false) == .closeAfterWriting)
    }

    @Test func aRequestWaitingForItsAnswerIsNotIdle() {
        var m = machine()
        let start = NIODeadline.now()
        _ = m.received(.head(head(.POST, "/increment")), now: start)
        m.startTaking(taken())
        _ = m.received(.end(nil), now: start)
        #expect(m.idleCheck(now: start + .seconds(60)) != .close)
        _ = m.answeringTaken(closeAfterAnswer: false, now: start + .seconds(61))
        #expect(m.idleCheck(now: start + .seconds(92)) == .close)
    }

    @Test func impossibleSequencesClose() {
        var m = machine()
        #expect(m.received(.body(ByteBuffer(string: "x"))) == .close)
        var other = machine()
        _ = other.received(.head(head(.POST, "/increment")))
        other.startTaking(taken())
        #expect(other.received(.head(head(.GET, "/"))) == .close)
    }
}
