import CLibPQ

/// One libpq connection. Blocking and confined to one thread: use it through
/// `PostgresClient`, which owns that thread, never from the cooperative pool.
///
/// Every statement takes its values as parameters (text format); SQL is never built from
/// values, so there is nothing to escape and nothing to inject.
public final class PostgresConnection {
    private let handle: OpaquePointer

    /// Connects to `url` (`postgresql://user@host:port/db?…`). Defaults that suit a daemon
    /// come first so that anything the URL sets wins: a connect timeout, TCP keepalives and a
    /// user timeout (so a vanished server is noticed in seconds, not at the kernel's
    /// two-hour default), and `application_name=tally` for `pg_stat_activity`.
    ///
    /// - Parameter settings: libpq keywords that override those defaults (still below the URL).
    public init(url: String, settings overrides: [(String, String)] = []) throws(PostgresError) {
        var settings: [(String, String)] = [
            ("connect_timeout", "5"),
            ("application_name", "tally"),
            ("keepalives", "1"),
            ("keepalives_idle", "5"),
            ("keepalives_interval", "2"),
            ("keepalives_count", "3"),
            ("tcp_user_timeout", "15000"),
        ]
        for (keyword, value) in overrides {
            settings.removeAll { $0.0 == keyword }
            settings.append((keyword, value))
        }
        settings.append(("dbname", url))
        let keywords = settings.map { strdup($0.0) }
        let values = settings.map { strdup($0.1) }
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let connection = (keywords.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { keywordPointers in
            (values.map { UnsafePointer($0) } + [nil]).withUnsafeBufferPointer { valuePointers in
                PQconnectdbParams(keywordPointers.baseAddress, valuePointers.baseAddress, 1)
            }
        }
        guard let connection else {
            throw PostgresError(sqlState: nil, message: "out of memory creating a connection", connectionBroken: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingTrailingNewlines()
            PQfinish(connection)
            throw PostgresError(sqlState: nil, message: "cannot connect: \(message)", connectionBroken: true)
        }
        // Server notices ("relation already exists, skipping") are not errors; libpq would
        // print them on stderr, in the middle of the daemon's structured logs.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
    }

    deinit {
        PQfinish(handle)
    }

    /// False once the server or network dropped the connection.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Runs one statement with text parameters (`nil` is SQL NULL) and returns its result.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresResult {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let result = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
        }
        return try check(result)
    }

    /// `COPY … FROM STDIN`: sends `data` (already in the COPY format the statement names).
    public func copyIn(_ sql: String, data: [UInt8]) throws(PostgresError) {
        _ = try check(PQexec(handle, sql), expecting: PGRES_COPY_IN)
        let sent = data.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(handle, $0, Int32(buffer.count))
            }
        }
        guard sent == 1, PQputCopyEnd(handle, nil) == 1 else { throw currentError(sqlState: nil) }
        _ = try check(PQgetResult(handle))
        while let extra = PQgetResult(handle) { PQclear(extra) }  // drain; libpq ends with NULL
    }

    private func check(_ result: OpaquePointer?, expecting expected: ExecStatusType? = nil) throws(PostgresError) -> PostgresResult {
        guard let result else { throw currentError(sqlState: nil) }
        let status = PQresultStatus(result)
        if let expected, status == expected { return PostgresResult(result) }
        if expected == nil && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) { return PostgresResult(result) }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        let message = String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines()
        PQclear(result)
        throw PostgresError(sqlState: state, message: message.isEmpty ? "unexpected result status" : message,
                            connectionBroken: !isHealthy)
    }

    private func currentError(sqlState: String?) -> PostgresError {
        PostgresError(sqlState: sqlState, message: String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines(),
                      connectionBroken: !isHealthy)
    }
}

/// The rows of a statement, read as text.
public final class PostgresResult {
    private let handle: OpaquePointer

    init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQclear(handle)
    }

    public var rowCount: Int { Int(PQntuples(handle)) }

    /// Rows an INSERT/UPDATE/DELETE touched.
    public var affectedRows: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }

    /// The value at `row`, `column` as text, nil for SQL NULL.
    public func value(row: Int, column: Int) -> String? {
        precondition(row < rowCount && column < Int(PQnfields(handle)), "result index out of range")
        if PQgetisnull(handle, Int32(row), Int32(column)) == 1 { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), Int32(column)))
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var copy = self
        while copy.last == "\n" || copy.last == " " { copy.removeLast() }
        return copy
    }
}

#if canImport(Glibc)
import Glibc
#endif
