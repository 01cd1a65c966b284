/// The tables other tools read: their names and the `key`/`total` columns are a public
/// contract, so they are spelled once, here.
public enum TableNames {
    public static let counts = "tally_counts"
    public static let checkpoints = "tally_checkpoints"
    public static let daily = "tally_daily"
    public static let keyNames = "tally_key_names"
    public static let requests = "tally_requests"
    public static let migrations = "tally_schema_migrations"
}
