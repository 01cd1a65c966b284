import Hummingbird
import NIOCore

/// Every answer Tally gives is JSON, errors included.
enum JSONResponse {
    static func make(_ status: HTTPResponse.Status, _ body: String, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) -> Response {
        make(status, ResponseBody.error(message), headers: headers)
    }

    /// 429/503 tell the client when to come back.
    static func retryLater(_ status: HTTPResponse.Status, _ message: String, afterSeconds seconds: Int) -> Response {
        error(status, message, headers: [.retryAfter: String(max(1, seconds))])
    }
}
