import Testing
import TallyPostgres
@testable import TallyServer

/// `PUT /keys/{key}`: which PostgreSQL errors say the name itself was refused (400, which the
/// client never retries) and which are the server's passing state (503, retried).
@Suite struct KeyNameRouteTests {
    @Test func onlyDataErrorsRefuseTheName() {
        func error(_ state: String?, broken: Bool = false) -> PostgresError {
            PostgresError(sqlState: state, message: "test", connectionBroken: broken)
        }
        #expect(KeyNameRoute.isAboutTheName(error("22001")), "string too long")
        #expect(KeyNameRoute.isAboutTheName(error("23514")), "check violation")
        for passing in ["25006", "40P01", "53100", "55P03", "42P01", "57014", "57P01"] {
            #expect(!KeyNameRoute.isAboutTheName(error(passing)), "\(passing) is the server's state, not the name's")
        }
        #expect(!KeyNameRoute.isAboutTheName(error("22001", broken: true)), "a broken connection is retried")
        #expect(!KeyNameRoute.isAboutTheName(error(nil)), "a client-side failure is retried")
    }
}
