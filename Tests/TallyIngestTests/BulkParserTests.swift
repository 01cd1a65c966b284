import Foundation
import Testing
import TallyIngest
import TallyLog

@Suite struct BulkParserTests {
    static let key = "0b5e55ed-0000-4000-8000-00000000c0de"
    static let good = #"{"key":"\#(key)","value":3}"#

    private func parse(_ text: String, max: Int = 100) -> Result<[IncrementBody], BulkParser.Rejection> {
        Array(text.utf8).withUnsafeBytes { BulkParser.parse($0, maxIncrements: max) }
    }

    @Test func linesWithOrWithoutAFinalNewlineOrCRLFParse() throws {
        for body in [Self.good + "\n" + Self.good, Self.good + "\n" + Self.good + "\n", Self.good + "\r\n" + Self.good + "\r\n"] {
            let increments = try parse(body).get()
            #expect(increments.count == 2 && increments.allSatisfy { $0.value == 3 }, "\(body.debugDescription)")
        }
    }

    /// Every class of refusal of the single-increment parser, on a line other than the first:
    /// the answer names that line, and nothing of the body is taken.
    @Test(arguments: [
        "{\"key\":\"nope\",\"value\":1}", "{\"key\":\"\(key)\",\"value\":0}", "{\"key\":\"\(key)\"}",
        "{\"key\":\"\(key)\",\"value\":1,\"x\":2}", "{\"key\":\"\(key)\",\"key\":\"\(key)\",\"value\":1}",
        "{\"key\":\"\(key)\",\"value\":1.5}", "{\"key\":\"\(key)\",\"value\":1e3}", "{\"key\":\"\(key)\",\"value\":01}",
        "{\"key\":\"\(key)\",\"value\":9223372036854775808}", "{\"key\":\"\(key)\",\"value\":\"1\"}",
        "[1]", "not json", "{\"key\":\"\(key)\",\"value\":1} trailing", "   ",
    ])
    func aBadLineIsNamedByItsNumber(_ bad: String) {
        let body = [Self.good, Self.good, bad, Self.good].joined(separator: "\n")
        guard case .failure(.line(let line, let message)) = parse(body) else {
            Issue.record("accepted a body with \(bad.debugDescription) on line 3")
            return
        }
        #expect(line == 3 && !message.isEmpty)
    }

    @Test func anEmptyBodyAnEmptyLineAndTooManyLinesAreRefused() {
        #expect(parse("") == .failure(.empty))
        #expect(parse(Self.good + "\n\n" + Self.good) == .failure(.line(2, "the line is empty; " + IncrementParser.usage)))
        let three = Array(repeating: Self.good, count: 3).joined(separator: "\n")
        #expect(parse(three, max: 2) == .failure(.tooManyIncrements(limit: 2)))
        #expect((try? parse(three, max: 3).get())?.count == 3)
    }
}
