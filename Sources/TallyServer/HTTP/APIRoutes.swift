import HTTPTypes

/// Every route of the HTTP API: its path template, its methods and its metrics label. The
/// router registers the handlers; this table is what answers 405 for a known path with an
/// unknown method (with `Allow`), and what names a request's route in metrics without
/// ever using the raw path (bounded label values).
enum APIRoutes {
    struct Route: Sendable {
        let template: String
        let methods: [HTTPRequest.Method]
        let metric: ServerMetrics.Route
    }

    static let all: [Route] = [
        Route(template: "/increment", methods: [.post], metric: .increment),
        Route(template: "/increments", methods: [.post], metric: .increments),
        Route(template: "/counts/{key}", methods: [.get], metric: .counts),
        Route(template: "/counts/{key}/daily", methods: [.get], metric: .countsDaily),
        Route(template: "/counts/{key}/period", methods: [.get], metric: .countsPeriod),
        Route(template: "/reports/daily", methods: [.get], metric: .reportsDaily),
        Route(template: "/keys/{key}", methods: [.put], metric: .keys),
        Route(template: "/healthz", methods: [.get], metric: .healthz),
        Route(template: "/readyz", methods: [.get], metric: .readyz),
        Route(template: "/metrics", methods: [.get], metric: .metrics),
        Route(template: "/openapi.yaml", methods: [.get], metric: .openapi),
    ]

    /// The route whose template `path` fits (`{…}` matches one non-empty segment).
    static func route(of path: String) -> Route? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        return all.first { route in
            let pattern = route.template.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard pattern.count == segments.count else { return false }
            return zip(pattern, segments).allSatisfy { expected, actual in
                expected.hasPrefix("{") ? !actual.isEmpty : expected == actual
            }
        }
    }
}
