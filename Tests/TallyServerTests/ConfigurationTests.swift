import Foundation
import Testing
@testable import TallyServer

@Suite struct ConfigurationTests {
    @Test func durationsAndSizesParseTheirUnits() {
        #expect(ValueParsing.duration("9s") == .seconds(9))
        #expect(ValueParsing.duration("500ms") == .milliseconds(500))
        #expect(ValueParsing.duration("1m") == .seconds(60))
        #expect(ValueParsing.duration("1.5s") == .milliseconds(1500))
        #expect(ValueParsing.duration("9") == nil)
        #expect(ValueParsing.duration("-1s") == nil)
        #expect(ValueParsing.byteCount("4KiB") == 4096)
        #expect(ValueParsing.byteCount("8GiB") == 8 << 30)
        #expect(ValueParsing.byteCount("512MB") == 512_000_000)
        #expect(ValueParsing.byteCount("1024") == 1024)
        #expect(ValueParsing.byteCount("lots") == nil)
    }

    @Test func errorBodiesAreValidJSON() throws {
        let body = ResponseBody.error("a \"quoted\" \\ message\nwith\u{01}control")
        let parsed = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String]
        #expect(parsed?["error"] == "a \"quoted\" \\ message\nwith\u{01}control")
        #expect(ResponseBody.acknowledged(lsn: 42) == #"{"lsn":42}"#)
    }
}
