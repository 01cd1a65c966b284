import Hummingbird
import NIOCore
import TallyLog

/// `POST /increment` through Hummingbird's router: validate strictly, append to the log,
/// answer 200 only after the fdatasync that covers the record.
///
/// Most increments never reach this route: `IncrementChannelHandler` answers them on the
/// event loop. It serves the ones that handler passes on — requests pipelined behind another
/// request on the same connection — and the router-level tests.
struct IncrementRoute: Sendable {
    let log: Log
    let metrics: ServerMetrics
    let intake: IncrementIntake

    func handle(_ request: Request, context: TallyRequestContext) async -> Response {
        let started = ContinuousClock.now
        if let refusal = intake.refusesDeclaredLength(request.headers[.contentLength]) {
            return JSONResponse.make(refusal)
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: intake.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            return JSONResponse.make(.bodyTooLarge(maxBodyBytes: intake.maxBodyBytes))
        } catch {
            return JSONResponse.error(.badRequest, "the body could not be read")
        }
        let record: LogRecord
        switch body.withUnsafeReadableBytes({ intake.outcome(forBody: $0) }) {
        case .append(let valid): record = valid
        case .refuse(let answer): return JSONResponse.make(answer)
        }
        do {
            let lsn = try await log.append(record)
            metrics.recordAcknowledged(after: ContinuousClock.now - started)
            return JSONResponse.make(.acknowledged(lsn: lsn))
        } catch let error as LogError {
            return JSONResponse.make(.notStored(error))
        } catch {
            return JSONResponse.make(.retryLater(.serviceUnavailable, "the increment was not stored: \(error)", afterSeconds: 1))
        }
    }
}
