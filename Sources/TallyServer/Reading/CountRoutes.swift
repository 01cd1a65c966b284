import Hummingbird
import TallyCore
import TallyLog
import TallyPostgres

/// `GET /counts/{key}`, `/counts/{key}/daily`, `/counts/{key}/period` and `/reports/daily`.
///
/// Handlers run as router tasks and wait for PostgreSQL on the read pool's threads, never on
/// an event loop, so increments keep their time budget whatever PostgreSQL does. When it
/// cannot answer (down, slow, or the pool's queue full) the answer is 503 + `Retry-After`,
/// never a guess.
struct CountRoutes: Sendable {
    let reader: CountReader
    let store: PostgresCountStore

    static let maxDailyDays = 366
    static let maxReportLimit = 10_000
    static let defaultReportLimit = 1_000

    func count(_ request: Request, context: TallyRequestContext) async -> Response {
        await answer {
            let key = try ReadParameters.key(context.parameters.get("key")).get()
            _ = try ReadParameters.query(request.uri, allowed: []).get()
            let count = try await reader.count(of: key)
            return JSONText.object([
                ("key", JSONText.string(key.uuidString)), ("total", count.total.description),
                ("persisted", count.persisted.description), ("pending", count.pending.description),
            ])
        }
    }

    func daily(_ request: Request, context: TallyRequestContext) async -> Response {
        await answer {
            let key = try ReadParameters.key(context.parameters.get("key")).get()
            let query = try ReadParameters.query(request.uri, allowed: ["from", "to"]).get()
            let days = try ReadParameters.range(from: query["from"], to: query["to"], maxDays: Self.maxDailyDays).get()
            let totals = try await reader.dailyTotals(of: key, in: days)
            let entries = totals.map { JSONText.object([("day", JSONText.string($0.day.iso)), ("total", $0.total.description)]) }
            return JSONText.object([("key", JSONText.string(key.uuidString)), ("days", JSONText.array(entries))])
        }
    }

    func period(_ request: Request, context: TallyRequestContext) async -> Response {
        await answer {
            let key = try ReadParameters.key(context.parameters.get("key")).get()
            let query = try ReadParameters.query(request.uri, allowed: ["year", "month", "day"]).get()
            let days = try ReadParameters.period(year: query["year"], month: query["month"], day: query["day"]).get()
            let total = try await reader.total(of: key, in: days)
            return JSONText.object([
                ("key", JSONText.string(key.uuidString)), ("from", JSONText.string(days.lowerBound.iso)),
                ("to", JSONText.string(days.upperBound.iso)), ("total", total.description),
            ])
        }
    }

    func dailyReport(_ request: Request, context: TallyRequestContext) async -> Response {
        await answer {
            let query = try ReadParameters.query(request.uri, allowed: ["day", "after", "limit"]).get()
            let day = try ReadParameters.day(query["day"], name: "day").get()
            let after = try query["after"].map { try ReadParameters.key($0, name: "after").get() }
            let limit = try ReadParameters.integer(query["limit"], name: "limit", in: 1...Self.maxReportLimit,
                                                   fallback: Self.defaultReportLimit).get()
            let page = try await store.dailyReport(day: day, after: after, limit: limit)
            let entries = page.entries.map { entry in
                var members = [("key", JSONText.string(entry.key.uuidString)), ("total", entry.total.description)]
                if let name = entry.name { members.append(("name", JSONText.string(name))) }
                return JSONText.object(members)
            }
            return JSONText.object([
                ("day", JSONText.string(day.iso)), ("keys", JSONText.array(entries)),
                ("next_after", page.nextAfter.map { JSONText.string($0.uuidString) } ?? "null"),
            ])
        }
    }

    /// Runs a read: a 200 with the JSON it returns, the 400 a parameter refused, or 503 when
    /// PostgreSQL (or this node's log) cannot give an exact answer now.
    private func answer(_ read: () async throws -> String) async -> Response {
        do {
            return JSONResponse.make(.ok, try await read())
        } catch let refusal as Answer {
            return JSONResponse.make(refusal)
        } catch let error as PostgresPoolError {
            let seconds = if case .busy = error { 1 } else { 2 }
            return JSONResponse.make(.retryLater(.serviceUnavailable, "cannot read counts now: \(error)", afterSeconds: seconds))
        } catch let error as CountReadError {
            return JSONResponse.make(.retryLater(.serviceUnavailable, "cannot read counts now: \(error)", afterSeconds: 1))
        } catch {
            return JSONResponse.make(.retryLater(.serviceUnavailable, "cannot read counts now: \(error)", afterSeconds: 2))
        }
    }
}

extension Answer: Error {}
