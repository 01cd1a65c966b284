import Synchronization

/// Runs `operation` but stops waiting for it at `deadline`.
///
/// For work that cannot be cancelled (a libpq call blocked on a lock, on a thread of its
/// own): the caller gets `DeadlineError.passed` on time, while the operation runs on in an
/// unstructured task until it ends by itself (or the process does). Use it only where
/// abandoning the result is safe, e.g. a final checkpoint whose transaction, never
/// acknowledged, the next start reads back.
func withDeadline<T: Sendable>(_ deadline: ContinuousClock.Instant,
                               _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = DeadlineWaiter<T>()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        outcome.continuation.withLock { $0 = continuation }
        let work = Task {
            let result = await Result(catching: { try await operation() })
            outcome.continuation.withLock { $0.take() }?.resume(with: result)
        }
        Task {
            try? await Task.sleep(until: deadline)
            if let waiting = outcome.continuation.withLock({ $0.take() }) {
                work.cancel()
                waiting.resume(throwing: DeadlineError.passed)
            }
        }
    }
}

/// Whoever takes the continuation first (the work or the deadline) resumes it.
private final class DeadlineWaiter<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
}

public enum DeadlineError: Error, CustomStringConvertible {
    case passed
    public var description: String { "the deadline passed before the operation finished" }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
