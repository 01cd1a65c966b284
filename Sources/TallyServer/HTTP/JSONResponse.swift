import Hummingbird
import NIOCore

/// Every answer Tally gives is JSON, errors included.
enum JSONResponse {
    static func make(_ answer: Answer) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: answer.headers)
        return Response(status: answer.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }

    static func make(_ status: HTTPResponse.Status, _ body: String) -> Response {
        make(Answer(status: status, body: body))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) -> Response {
        make(.error(status, message, headers: headers))
    }
}
