/// A libpq or server error, with what a caller needs to decide: the SQLSTATE (e.g. `42601`
/// syntax error, `40P01` deadlock) and whether the connection is gone.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// Five-character SQLSTATE from the server, nil for client-side failures.
    public var sqlState: String?
    public var message: String
    /// The connection is unusable: the client reconnects on the next call.
    public var connectionBroken: Bool

    public init(sqlState: String?, message: String, connectionBroken: Bool) {
        self.sqlState = sqlState
        self.message = message
        self.connectionBroken = connectionBroken
    }

    public var description: String {
        let state = sqlState.map { " (SQLSTATE \($0))" } ?? ""
        return "PostgreSQL: \(message)\(state)\(connectionBroken ? " [connection lost]" : "")"
    }
}
