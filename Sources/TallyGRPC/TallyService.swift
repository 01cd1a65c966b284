import GRPCCore
import TallyCore
import TallyIngest
import TallyLog
import TallyProtos

/// The `tally.v1.Tally` gRPC service: the same ingest, reads, keys and rate limit as the
/// HTTP API, in gRPC's terms.
final class TallyService: Tally_V1_Tally.ServiceProtocol {
    struct Dependencies: Sendable {
        let ingest: Ingest
        let reader: CountReader
        let gate: RequestGate
        let intake: IncrementRequestIntake
        /// Requests of one stream waiting for their fdatasync at once.
        let streamWindow: Int
        let onAcknowledged: @Sendable (Int, Duration) -> Void
    }

    private let dependencies: Dependencies

    init(_ dependencies: Dependencies) {
        self.dependencies = dependencies
    }

    /// The key check, for the whole call (its metadata does not change), and the rate limit
    /// applied to each message of a stream.
    private func check(_ metadata: Metadata, context: ServerContext) throws(RPCError) {
        let authorization = metadata[stringValues: "authorization"].first(where: { _ in true })
        if let refusal = dependencies.gate.refusal(authorization: authorization, forwardedFor: nil,
                                                  peer: { Self.host(of: context.remotePeer) }) {
            throw RPCStatus.refusal(refusal)
        }
    }

    /// `127.0.0.1` from `ipv4:127.0.0.1:4321`, `::1` from `ipv6:[::1]:443`: the rate
    /// limit's client, as the HTTP front sees it.
    static func host(of peer: String) -> String? {
        let address = peer.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init) ?? peer
        if address.hasPrefix("["), let end = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<end])
        }
        return address.split(separator: ":").dropLast().joined(separator: ":")
    }

    func increment(request: StreamingServerRequest<Tally_V1_IncrementRequest>, context: ServerContext) async throws
        -> StreamingServerResponse<Tally_V1_IncrementAck>
    {
        let gate = dependencies.gate
        let authorization = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        if let keys = gate.keys, !keys.authorizes(authorizationHeader: authorization) {
            throw RPCStatus.refusal(.unauthorized)
        }
        let peer = Self.host(of: context.remotePeer)
        let stream = IncrementStream(
            ingest: dependencies.ingest, intake: dependencies.intake, window: dependencies.streamWindow,
            admit: { () throws(RPCError) in
                // Keys were checked for the call; each message meets the rate limit.
                if let limiter = gate.limiter,
                   case .limited(let seconds) = limiter.admit(client: gate.addresses.client(peer: peer, forwardedFor: nil)) {
                    throw RPCStatus.refusal(.rateLimited(retryAfterSeconds: seconds))
                }
            },
            onAcknowledged: dependencies.onAcknowledged)
        return StreamingServerResponse { writer in
            try await stream.run(request.messages, writer: writer)
            return [:]
        }
    }

    func getCount(request: ServerRequest<Tally_V1_GetCountRequest>, context: ServerContext) async throws
        -> ServerResponse<Tally_V1_Count>
    {
        try check(request.metadata, context: context)
        let key = try Self.key(request.message.key)
        do {
            let count = try await dependencies.reader.count(of: key)
            return ServerResponse(message: .with {
                $0.key = key.uuidString
                $0.total = count.total.description
                $0.persisted = count.persisted.description
                $0.pending = count.pending.description
            })
        } catch {
            throw RPCStatus.unavailable(error)
        }
    }

    func listDailyTotals(request: ServerRequest<Tally_V1_ListDailyTotalsRequest>, context: ServerContext) async throws
        -> ServerResponse<Tally_V1_ListDailyTotalsResponse>
    {
        try check(request.metadata, context: context)
        let key = try Self.key(request.message.key)
        guard let from = Day(iso: request.message.from), let to = Day(iso: request.message.to) else {
            throw RPCError(code: .invalidArgument, message: "from and to must be dates YYYY-MM-DD")
        }
        guard from <= to, Int(to.number) - Int(from.number) < 366 else {
            throw RPCError(code: .invalidArgument, message: "from must not be after to, and at most 366 days apart")
        }
        do {
            let days = try await dependencies.reader.dailyTotals(of: key, in: from...to)
            return ServerResponse(message: .with { response in
                response.key = key.uuidString
                response.days = days.map { day in .with { $0.day = day.day.iso; $0.total = day.total.description } }
            })
        } catch {
            throw RPCStatus.unavailable(error)
        }
    }

    func getPeriodTotal(request: ServerRequest<Tally_V1_GetPeriodTotalRequest>, context: ServerContext) async throws
        -> ServerResponse<Tally_V1_PeriodTotal>
    {
        try check(request.metadata, context: context)
        let message = request.message
        let key = try Self.key(message.key)
        let year = Int(message.year)
        let month = Int(message.month)
        let day = Int(message.day)
        let range: ClosedRange<Day>
        switch (month, day) {
        case (0, 0):
            guard let first = Day(year: year, month: 1, day: 1), let last = Day(year: year, month: 12, day: 31) else {
                throw RPCError(code: .invalidArgument, message: "year must be 1…9999")
            }
            range = first...last
        case (_, 0):
            guard let first = Day(year: year, month: month, day: 1),
                  let last = Day(year: year, month: month, day: Day.daysIn(month: month, year: year)) else {
                throw RPCError(code: .invalidArgument, message: "year must be 1…9999 and month 1…12")
            }
            range = first...last
        default:
            guard month != 0, let only = Day(year: year, month: month, day: day) else {
                throw RPCError(code: .invalidArgument, message: "day needs month, and must exist in it")
            }
            range = only...only
        }
        do {
            let total = try await dependencies.reader.total(of: key, in: range)
            return ServerResponse(message: .with {
                $0.key = key.uuidString
                $0.from = range.lowerBound.iso
                $0.to = range.upperBound.iso
                $0.total = total.description
            })
        } catch {
            throw RPCStatus.unavailable(error)
        }
    }

    private static func key(_ text: String) throws(RPCError) -> LogKey {
        guard let key = KeyText.parse(text) else {
            throw RPCError(code: .invalidArgument, message: "key must be a UUID in the form 8-4-4-4-12 hex digits")
        }
        return key
    }
}
