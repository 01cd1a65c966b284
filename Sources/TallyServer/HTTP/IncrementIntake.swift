import TallyLog

#if canImport(Glibc)
import Glibc
#endif

/// The checks an increment passes before the log sees it, shared by the Hummingbird route
/// and the event-loop fast path so that both accept and refuse exactly the same requests.
struct IncrementIntake: Sendable {
    enum Outcome {
        /// Valid: append this record.
        case append(LogRecord)
        /// Invalid: answer this and store nothing.
        case refuse(Answer)
    }

    let maxBodyBytes: Int
    /// The arrival time stamped on each record (ms since the epoch, UTC): the day it is
    /// counted under. Injected by tests to place increments around midnight.
    let clock: @Sendable () -> Int64

    init(maxBodyBytes: Int, clock: @escaping @Sendable () -> Int64 = IncrementIntake.nowMillis) {
        self.maxBodyBytes = maxBodyBytes
        self.clock = clock
    }

    /// A declared `Content-Length` over the limit is refused before any body byte is read.
    func refusesDeclaredLength(_ contentLength: String?) -> Answer? {
        guard let declared = contentLength.flatMap(Int.init), declared > maxBodyBytes else { return nil }
        return .bodyTooLarge(maxBodyBytes: maxBodyBytes)
    }

    /// Parses a complete body strictly into the record to append.
    func outcome(forBody body: UnsafeRawBufferPointer) -> Outcome {
        guard body.count <= maxBodyBytes else { return .refuse(.bodyTooLarge(maxBodyBytes: maxBodyBytes)) }
        switch IncrementParser.parse(body) {
        case .success(let increment):
            return .append(LogRecord(key: increment.key, value: increment.value, arrivalMillis: clock()))
        case .failure(let rejection):
            return .refuse(.error(.badRequest, rejection.message))
        }
    }

    @Sendable static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
