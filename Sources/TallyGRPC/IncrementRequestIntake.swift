import GRPCCore
import TallyCore
import TallyIngest
import TallyLog
import TallyProtos

/// Turns one `IncrementRequest` of a stream into what `Ingest` takes, under the same rules
/// as the HTTP API: every key a UUID, every value 1 … Int64.max, 1 … `maxIncrements` per
/// request, an optional `request_id` of 1…64 printable ASCII characters. A refusal is an
/// INVALID_ARGUMENT that names the request's index in the stream and the field.
struct IncrementRequestIntake: Sendable {
    let maxIncrements: Int
    /// Arrival time of the records (ms since the epoch, UTC).
    let clock: @Sendable () -> Int64

    func records(of request: Tally_V1_IncrementRequest, index: Int) throws(RPCError) -> (records: [LogRecord], tag: RequestTag?) {
        func refuse(_ what: String) -> RPCError {
            RPCError(code: .invalidArgument, message: "request \(index) of the stream: \(what); nothing of it was stored")
        }
        guard !request.increments.isEmpty else { throw refuse("it holds no increments") }
        guard request.increments.count <= maxIncrements else {
            throw refuse("it holds \(request.increments.count) increments, more than \(maxIncrements)")
        }
        let now = clock()
        var records: [LogRecord] = []
        records.reserveCapacity(request.increments.count)
        for (position, increment) in request.increments.enumerated() {
            guard let key = KeyText.parse(increment.key) else {
                throw refuse("increments[\(position)].key must be a UUID in the form 8-4-4-4-12 hex digits")
            }
            guard increment.value >= 1 else {
                throw refuse("increments[\(position)].value must be from 1 to 9223372036854775807")
            }
            records.append(LogRecord(key: key, value: increment.value, arrivalMillis: now))
        }
        var tag: RequestTag?
        if !request.requestID.isEmpty {
            guard let valid = RequestTag(id: request.requestID, digest: RequestDigest.of(records)) else {
                throw refuse("request_id must be 1 to 64 printable ASCII characters")
            }
            tag = valid
        }
        return (records, tag)
    }
}
