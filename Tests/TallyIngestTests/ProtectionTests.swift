import Foundation
import Testing
@testable import TallyIngest

@Suite struct ProtectionTests {
    @Test func aBucketAllowsTheBurstThenRefillsAtTheRate() {
        let limiter = RateLimiter(ratePerSecond: 2, burst: 3)
        let start = ContinuousClock.now
        for _ in 0..<3 { #expect(limiter.admit(client: "a", now: start) == .admitted) }
        #expect(limiter.admit(client: "a", now: start) == .limited(retryAfterSeconds: 1))
        #expect(limiter.admit(client: "b", now: start) == .admitted, "clients are independent")
        #expect(limiter.admit(client: "a", now: start + .milliseconds(500)) == .admitted, "one token after 0.5 s at 2/s")
        #expect(limiter.admit(client: "a", now: start + .milliseconds(500)) != .admitted)
    }

    @Test func retryAfterCoversTheWaitForOneToken() {
        let limiter = RateLimiter(ratePerSecond: 0.1, burst: 1)
        let now = ContinuousClock.now
        #expect(limiter.admit(client: "slow", now: now) == .admitted)
        #expect(limiter.admit(client: "slow", now: now) == .limited(retryAfterSeconds: 10))
    }

    @Test func theClientTableStaysBounded() {
        let limiter = RateLimiter(ratePerSecond: 1, burst: 5, maxClients: 1_600)
        let now = ContinuousClock.now
        for index in 0..<50_000 { _ = limiter.admit(client: "client-\(index)", now: now) }
        #expect(limiter.trackedClients <= 1_600)
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() {
        let addresses = ClientAddress(trustedProxies: ["10.0.0.1", "10.0.0.2"])
        #expect(addresses.client(peer: "192.0.2.7", forwardedFor: "203.0.113.9") == "192.0.2.7")
        #expect(addresses.client(peer: "10.0.0.1", forwardedFor: "203.0.113.9") == "203.0.113.9")
        #expect(addresses.client(peer: "10.0.0.1", forwardedFor: "1.1.1.1, 203.0.113.9, 10.0.0.2") == "203.0.113.9")
        #expect(addresses.client(peer: "10.0.0.1", forwardedFor: nil) == "10.0.0.1")
    }

    @Test func apiKeysMatchExactlyAndNeverPrint() throws {
        let keys = try APIKeys(keys: ["# comment", "  alpha-key  ", "", "beta"])
        #expect(keys.authorizes(authorizationHeader: "Bearer alpha-key"))
        #expect(keys.authorizes(authorizationHeader: "bearer beta"))
        #expect(!keys.authorizes(authorizationHeader: "Bearer alpha"))
        #expect(!keys.authorizes(authorizationHeader: "Bearer alpha-key2"))
        #expect(!keys.authorizes(authorizationHeader: "Basic alpha-key"))
        #expect(!keys.authorizes(authorizationHeader: nil))
        #expect(!"\(keys)".contains("alpha"))
        #expect(throws: APIKeysError.self) { try APIKeys(keys: ["# only a comment", " "]) }
    }

}
