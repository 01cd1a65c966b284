import NIOConcurrencyHelpers
import NIOCore

/// Hands work from another thread to one event loop, waking the loop once per batch rather
/// than once per item.
///
/// The log's writer resumes every request of a frame in a row (about a hundred under load).
/// With `eventLoop.execute` per request, each one is a cross-thread wake-up of the loop (an
/// eventfd write and a context switch when the loop sleeps). Here the first item of a batch
/// schedules one drain; items posted before the loop gets to it join that drain.
final class EventLoopMailbox: Sendable {
    let eventLoop: any EventLoop
    private struct State {
        var items: [@Sendable () -> Void] = []
        var drainScheduled = false
    }
    private let state = NIOLockedValueBox(State())

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `item` on the event loop, after the items posted before it.
    func post(_ item: @escaping @Sendable () -> Void) {
        let schedule = state.withLockedValue { state -> Bool in
            state.items.append(item)
            defer { state.drainScheduled = true }
            return !state.drainScheduled
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let items = state.withLockedValue { state -> [@Sendable () -> Void] in
            state.drainScheduled = false
            defer { state.items.removeAll(keepingCapacity: true) }
            return state.items
        }
        for item in items { item() }
    }
}

/// One mailbox per event loop of the server, made on first use.
final class EventLoopMailboxes: Sendable {
    private let mailboxes = NIOLockedValueBox([ObjectIdentifier: EventLoopMailbox]())

    func mailbox(for eventLoop: any EventLoop) -> EventLoopMailbox {
        mailboxes.withLockedValue { mailboxes in
            let id = ObjectIdentifier(eventLoop)
            if let mailbox = mailboxes[id] { return mailbox }
            let mailbox = EventLoopMailbox(eventLoop: eventLoop)
            mailboxes[id] = mailbox
            return mailbox
        }
    }
}
