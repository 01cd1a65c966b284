import TallyLog

/// The bodies Tally answers with.
public enum ResponseBody {
    public static func acknowledged(lsn: LSN) -> String { #"{"lsn":\#(lsn)}"# }

    /// `{"error": message}` with the message escaped as a JSON string.
    public static func error(_ message: String) -> String {
        #"{"error":\#(JSONText.string(message))}"#
    }
}
