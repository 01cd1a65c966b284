import Foundation

/// A dedicated thread for blocking work (reading segment files), so that it never runs on
/// Swift's cooperative pool, whose few threads the HTTP front and checkpointer share.
///
/// Jobs run one at a time in submission order; the queue is bounded by `maxQueuedJobs`.
public final class BlockingExecutor: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false
    private let maxQueuedJobs: Int

    public init(name: String, maxQueuedJobs: Int = 64) {
        self.maxQueuedJobs = maxQueuedJobs
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the executor's thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            guard !stopped, jobs.count < maxQueuedJobs else {
                condition.unlock()
                continuation.resume(throwing: BlockingExecutorError.unavailable)
                return
            }
            jobs.append { continuation.resume(with: Result { try body() }) }
            condition.signal()
            condition.unlock()
        }
    }

    /// Lets queued jobs finish, then ends the thread.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}

public enum BlockingExecutorError: Error {
    /// The executor was shut down or its queue is full.
    case unavailable
}
