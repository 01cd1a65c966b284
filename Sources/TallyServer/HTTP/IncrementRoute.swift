import Hummingbird
import NIOCore
import TallyCore
import TallyLog

#if canImport(Glibc)
import Glibc
#endif

/// `POST /increment`: validate strictly, append to the log, answer 200 only after the
/// fdatasync that covers the record.
struct IncrementRoute: Sendable {
    let log: Log
    let metrics: ServerMetrics
    let maxBodyBytes: Int

    func handle(_ request: Request, context: TallyRequestContext) async -> Response {
        let started = ContinuousClock.now
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > maxBodyBytes {
            return JSONResponse.error(.contentTooLarge, "the body is larger than \(maxBodyBytes) bytes")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return JSONResponse.error(.contentTooLarge, "the body is larger than \(maxBodyBytes) bytes")
        } catch {
            return JSONResponse.error(.badRequest, "the body could not be read")
        }
        let parsed = body.withUnsafeReadableBytes { IncrementParser.parse($0) }
        let increment: IncrementBody
        switch parsed {
        case .success(let value): increment = value
        case .failure(let rejection): return JSONResponse.error(.badRequest, rejection.message)
        }
        let record = LogRecord(key: increment.key, value: increment.value, arrivalMillis: Self.nowMillis())
        do {
            let lsn = try await log.append(record)
            metrics.recordAcknowledged(after: ContinuousClock.now - started)
            return JSONResponse.make(.ok, ResponseBody.acknowledged(lsn: lsn))
        } catch let error as LogError {
            return Self.refusal(for: error)
        } catch {
            return JSONResponse.retryLater(.serviceUnavailable, "the increment was not stored: \(error)", afterSeconds: 1)
        }
    }

    /// Nothing was stored; say why and when to retry.
    static func refusal(for error: LogError) -> Response {
        switch error {
        case .full:
            JSONResponse.retryLater(.serviceUnavailable, "the increment was not stored: the log is over its disk budget "
                + "while PostgreSQL catches up", afterSeconds: 5)
        case .overloaded:
            JSONResponse.retryLater(.serviceUnavailable, "the increment was not stored: too many increments are waiting", afterSeconds: 1)
        case .stopped, .closed:
            JSONResponse.retryLater(.serviceUnavailable, "the increment was not stored: the log accepts no writes (\(error))", afterSeconds: 5)
        default:
            JSONResponse.retryLater(.serviceUnavailable, "the increment was not stored: \(error)", afterSeconds: 1)
        }
    }

    static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
