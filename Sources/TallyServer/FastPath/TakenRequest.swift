import NIOCore
import NIOHTTP1
import TallyIngest

/// An ingest request (`POST /increment` or `POST /increments`) the fast path has taken,
/// while its body arrives.
struct TakenRequest {
    enum Kind: Equatable, Sendable {
        /// `POST /increment`: one JSON object.
        case single
        /// `POST /increments`: NDJSON, one object per line.
        case bulk
    }

    let kind: Kind
    let reply: Reply
    /// The `Idempotency-Key` header, when the client sent one.
    let idempotencyKey: String?
    /// The most body bytes this route takes.
    let maxBodyBytes: Int
    private(set) var body: ByteBuffer?
    /// Decided before the body ended (gate, declared size, bad header); the rest of the
    /// body is read and discarded.
    private(set) var refusal: Answer?

    init(kind: Kind, reply: Reply, idempotencyKey: String?, maxBodyBytes: Int, refusal: Answer?) {
        self.kind = kind
        self.reply = reply
        self.idempotencyKey = idempotencyKey
        self.maxBodyBytes = maxBodyBytes
        self.refusal = refusal
    }

    /// Adds a chunk of body, or refuses the request once it is over the limit.
    mutating func absorb(_ chunk: ByteBuffer) {
        guard refusal == nil else { return }
        let sizeBytes = (body?.readableBytes ?? 0) + chunk.readableBytes
        guard sizeBytes <= maxBodyBytes else {
            refusal = .bodyTooLarge(maxBodyBytes: maxBodyBytes)
            body = nil
            return
        }
        if body == nil {
            body = chunk
        } else {
            body!.writeImmutableBuffer(chunk)
        }
    }
}

/// What answering a request needs once its body has been parsed and let go.
struct Reply: Sendable {
    let kind: TakenRequest.Kind
    let started: ContinuousClock.Instant
    let version: HTTPVersion
    let closeAfterAnswer: Bool
}
