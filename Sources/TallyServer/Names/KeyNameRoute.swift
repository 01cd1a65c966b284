import Foundation
import Hummingbird
import NIOCore
import TallyIngest
import TallyLog
import TallyPostgres

/// `PUT /keys/{key}` with `{"name": "GET /users/{id}"}`: gives a key the name reports show
/// (`tally_key_names`). Clients register each name once per process; registering a name
/// again, or renaming a key, is an idempotent upsert, so any number of processes may race.
///
/// The key need not be derived from the name: a name labels any counter. The write goes
/// through a PostgreSQL connection of its own (the read pool's sessions are read-only), one
/// statement, bounded by a statement timeout; when PostgreSQL cannot take it the answer is
/// 503 + `Retry-After`, and the client retries.
struct KeyNameRoute: Sendable {
    let names: PostgresKeyNames
    let maxBodyBytes: Int

    func put(_ request: Request, context: TallyRequestContext) async -> Response {
        do {
            let key = try ReadParameters.key(context.parameters.get("key")).get()
            _ = try ReadParameters.query(request.uri, allowed: []).get()
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodyBytes)
            } catch is NIOTooManyBytesError {
                return JSONResponse.make(.bodyTooLarge(maxBodyBytes: maxBodyBytes))
            }
            let name = try Self.name(in: body).get()
            try await names.register(name: name, for: key)
            return JSONResponse.make(.ok, JSONText.object([("key", JSONText.string(key.uuidString)), ("name", JSONText.string(name))]))
        } catch let refusal as Answer {
            return JSONResponse.make(refusal)
        } catch let error as PostgresError where Self.isAboutTheName(error) {
            return JSONResponse.error(.badRequest, "the name was refused: \(error.message)")
        } catch {
            return JSONResponse.make(.retryLater(.serviceUnavailable, "cannot store the name now: \(error)", afterSeconds: 1))
        }
    }

    /// Only data errors (SQLSTATE classes 22 and 23) say the name itself was refused; every
    /// other error (a read-only server after a failover, a deadlock, a full disk, tables not
    /// yet migrated) is the server's state, and the client should try again.
    static func isAboutTheName(_ error: PostgresError) -> Bool {
        guard !error.connectionBroken, let state = error.sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }

    /// Exactly `{"name": <string>}`: 1 to 200 characters, no control characters.
    static func name(in body: ByteBuffer) -> Result<String, Answer> {
        let refusal = Answer.error(.badRequest, #"the body must be a JSON object {"name": "<1 to 200 characters>"}"#)
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            return .failure(refusal)
        }
        if let unknown = object.keys.first(where: { $0 != "name" }) {
            return .failure(.error(.badRequest, "unknown field \"\(unknown.prefix(40))\" (the body takes only \"name\")"))
        }
        guard let name = object["name"] as? String else {
            return .failure(.error(.badRequest, "\"name\" must be a string"))
        }
        let count = name.unicodeScalars.count
        guard (1...PostgresKeyNames.maxNameCharacters).contains(count) else {
            return .failure(.error(.badRequest, "\"name\" must have 1 to \(PostgresKeyNames.maxNameCharacters) characters, it has \(count)"))
        }
        guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            return .failure(.error(.badRequest, "\"name\" must not contain control characters"))
        }
        return .success(name)
    }
}
