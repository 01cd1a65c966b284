import Hummingbird
import NIOCore
import TallyCore
import TallyLog

/// `POST /increment` and `POST /increments` through Hummingbird's router: validate strictly,
/// submit to `Ingest`, answer 200 only after the fdatasync that covers the request.
///
/// Most ingest never reaches this route: `IngestChannelHandler` answers it on the event
/// loop. It serves what that handler passes on — requests pipelined behind another request
/// on the same connection — and the router-level tests, with the same intake and answers.
struct IngestRoute: Sendable {
    let ingest: Ingest
    let metrics: ServerMetrics
    let intake: IncrementIntake
    let kind: TakenRequest.Kind

    func handle(_ request: Request, context: TallyRequestContext) async -> Response {
        let started = ContinuousClock.now
        if let refusal = intake.refusesDeclaredLength(request.headers[.contentLength], kind: kind) {
            return JSONResponse.make(refusal)
        }
        let idempotencyKey = request.headers[values: .idempotencyKey]
        let key = idempotencyKey.isEmpty ? nil : idempotencyKey.joined(separator: ", ")
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: intake.maxBytes(for: kind))
        } catch is NIOTooManyBytesError {
            return JSONResponse.make(.bodyTooLarge(maxBodyBytes: intake.maxBytes(for: kind)))
        } catch {
            return JSONResponse.error(.badRequest, "the body could not be read")
        }
        let records: [LogRecord]
        let tag: RequestTag?
        switch body.withUnsafeReadableBytes({ intake.outcome(kind: kind, body: $0, idempotencyKey: key) }) {
        case .submit(let valid, let validTag):
            records = valid
            tag = validTag
        case .refuse(let answer):
            return JSONResponse.make(answer)
        }
        let outcome = await ingest.submit(records, tag: tag)
        if case .stored = outcome { metrics.recordAcknowledged(after: ContinuousClock.now - started) }
        return JSONResponse.make(intake.answer(outcome, kind: kind))
    }
}
