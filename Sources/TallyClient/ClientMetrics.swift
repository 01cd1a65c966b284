import Metrics

/// The client's swift-metrics: whatever backend the application bootstrapped (Prometheus,
/// OTel, …) gets them; without one they cost a no-op call.
///
/// Counters are published in batches (when a batch completes, at each retry) and gauges at
/// batch boundaries, so that a queued increment touches no metric and stays well under a
/// microsecond; a drop is counted where it happens, once per refused call.
struct ClientMetrics: Sendable {
    /// Increments (calls) waiting to be delivered.
    let queued: Gauge
    /// Lines held by the queue, against `capacityLines`.
    let queuedLines: Gauge
    let sent: Counter
    let retried: Counter
    let dropped: Counter
    let failed: Counter
    let undelivered: Counter

    init(label: String) {
        let dimensions = [("client", label)]
        queued = Gauge(label: "tally_client_queued_increments", dimensions: dimensions)
        queuedLines = Gauge(label: "tally_client_queued_lines", dimensions: dimensions)
        sent = Counter(label: "tally_client_sent_increments", dimensions: dimensions)
        retried = Counter(label: "tally_client_retried_requests", dimensions: dimensions)
        dropped = Counter(label: "tally_client_dropped_increments", dimensions: dimensions)
        failed = Counter(label: "tally_client_failed_increments", dimensions: dimensions)
        undelivered = Counter(label: "tally_client_undelivered_increments", dimensions: dimensions)
    }

    /// Publishes what changed since `previous`.
    func publish(_ now: TallyClient.Statistics, since previous: TallyClient.Statistics, heldLines: Int) {
        queued.record(now.queued)
        queuedLines.record(heldLines)
        if now.sent > previous.sent { sent.increment(by: now.sent - previous.sent) }
        if now.retried > previous.retried { retried.increment(by: now.retried - previous.retried) }
        if now.failed > previous.failed { failed.increment(by: now.failed - previous.failed) }
        if now.undelivered > previous.undelivered { undelivered.increment(by: now.undelivered - previous.undelivered) }
    }
}
