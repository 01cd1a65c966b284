import Foundation
import Testing
import TallyLog
@testable import TallyIngest

/// The validation table: every rejection class, and the accepted variants.
@Suite struct IncrementParserTests {
    static let uuid = "123e4567-e89b-12d3-a456-426614174000"
    static let key = LogKey(UUID(uuidString: uuid)!)

    struct Case: Sendable, CustomTestStringConvertible {
        let body: String
        /// nil: must be accepted; otherwise a fragment the error message must contain.
        let error: String?
        var value: Int64 = 5
        var testDescription: String { body.isEmpty ? "(empty)" : body }
    }

    static let cases: [Case] = [
        // Accepted.
        Case(body: #"{"key":"\#(uuid)","value":5}"#, error: nil),
        Case(body: #"{"value":5,"key":"\#(uuid)"}"#, error: nil),
        Case(body: " \n\t{ \"key\" : \"\(uuid)\" ,\r\n \"value\" : 5 } \n", error: nil),
        Case(body: #"{"key":"\#(uuid.uppercased())","value":5}"#, error: nil),
        Case(body: #"{"key":"\#(uuid)","value":9223372036854775807}"#, error: nil, value: .max),
        Case(body: #"{"key":"\#(uuid)","value":1}"#, error: nil, value: 1),
        // Malformed JSON and wrong shapes.
        Case(body: "", error: "empty"),
        Case(body: "   ", error: "empty"),
        Case(body: "[1,2]", error: "JSON object"),
        Case(body: "\"text\"", error: "JSON object"),
        Case(body: "null", error: "JSON object"),
        Case(body: "{", error: "malformed JSON"),
        Case(body: #"{"key":"\#(uuid)","value":5"#, error: "not closed"),
        Case(body: #"{"key":"\#(uuid)" "value":5}"#, error: "expected ','"),
        Case(body: #"{"key" "\#(uuid)","value":5}"#, error: "expected ':'"),
        Case(body: #"{key:"\#(uuid)","value":5}"#, error: "field name"),
        Case(body: #"{"key":"\#(uuid)","value":5,}"#, error: "field name"),
        Case(body: "{}", error: "missing field \"key\""),
        // Missing, unknown, duplicate fields.
        Case(body: #"{"value":5}"#, error: "missing field \"key\""),
        Case(body: #"{"key":"\#(uuid)"}"#, error: "missing field \"value\""),
        Case(body: #"{"key":"\#(uuid)","value":5,"extra":1}"#, error: "unknown field \"extra\""),
        Case(body: #"{"kee":"\#(uuid)","value":5}"#, error: "unknown field \"kee\""),
        Case(body: #"{"Key":"\#(uuid)","value":5}"#, error: "unknown field \"Key\""),
        Case(body: #"{"key":"\#(uuid)","key":"\#(uuid)","value":5}"#, error: "duplicate field \"key\""),
        Case(body: #"{"key":"\#(uuid)","value":5,"value":6}"#, error: "duplicate field \"value\""),
        Case(body: #"{"\u006bey":"\#(uuid)","value":5}"#, error: "escapes"),
        // Wrong types.
        Case(body: #"{"key":5,"value":5}"#, error: "\"key\" must be a string"),
        Case(body: #"{"key":null,"value":5}"#, error: "\"key\" must be a string"),
        Case(body: #"{"key":["\#(uuid)"],"value":5}"#, error: "\"key\" must be a string"),
        Case(body: #"{"key":"\#(uuid)","value":"5"}"#, error: "\"value\" must be an integer"),
        Case(body: #"{"key":"\#(uuid)","value":true}"#, error: "\"value\" must be an integer"),
        Case(body: #"{"key":"\#(uuid)","value":null}"#, error: "\"value\" must be an integer"),
        Case(body: #"{"key":"\#(uuid)","value":{}}"#, error: "\"value\" must be an integer"),
        // Numbers out of the contract.
        Case(body: #"{"key":"\#(uuid)","value":0}"#, error: "got 0"),
        Case(body: #"{"key":"\#(uuid)","value":-1}"#, error: "negative"),
        Case(body: #"{"key":"\#(uuid)","value":1.5}"#, error: "no fraction"),
        Case(body: #"{"key":"\#(uuid)","value":1.0}"#, error: "no fraction"),
        Case(body: #"{"key":"\#(uuid)","value":1e3}"#, error: "no fraction or exponent"),
        Case(body: #"{"key":"\#(uuid)","value":9223372036854775808}"#, error: "larger number"),
        Case(body: #"{"key":"\#(uuid)","value":99999999999999999999999}"#, error: "larger number"),
        Case(body: #"{"key":"\#(uuid)","value":007}"#, error: "leading zeros"),
        Case(body: #"{"key":"\#(uuid)","value":+5}"#, error: "\"value\" must be an integer"),
        // Bad UUIDs.
        Case(body: #"{"key":"not-a-uuid","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"123e4567e89b12d3a456426614174000","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"{123e4567-e89b-12d3-a456-426614174000}","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"123e4567-e89b-12d3-a456-42661417400g","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"123e4567-e89b-12d3-a456-4266141740000","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"","value":5}"#, error: "\"key\" must be a UUID"),
        Case(body: #"{"key":"123e4567-e89b-12d3-a456-42661417400\u0030","value":5}"#, error: "\"key\" must be a UUID"),
        // Trailing data.
        Case(body: #"{"key":"\#(uuid)","value":5} x"#, error: "after the JSON object"),
        Case(body: #"{"key":"\#(uuid)","value":5}{}"#, error: "after the JSON object"),
    ]

    @Test(arguments: cases)
    func validation(_ testCase: Case) {
        let result = IncrementParser.parse(Array(testCase.body.utf8))
        switch (result, testCase.error) {
        case (.success(let body), nil):
            #expect(body == IncrementBody(key: Self.key, value: testCase.value))
        case (.failure(let rejection), let fragment?):
            #expect(rejection.message.contains(fragment), "message was: \(rejection.message)")
        case (.success, let fragment?):
            Issue.record("accepted a body that must be refused (\(fragment))")
        case (.failure(let rejection), nil):
            Issue.record("refused a valid body: \(rejection.message)")
        }
    }
}
