import Hummingbird
import NIOCore
import TallyCore
import TallyLog

/// `/healthz`, `/readyz` and `/metrics`.
struct StatusRoutes: Sendable {
    let log: Log
    let checkpointer: Checkpointer
    let metrics: ServerMetrics
    let drain: DrainSignal

    /// The process is alive (and answering HTTP).
    func health() -> Response {
        JSONResponse.make(.ok, #"{"status":"alive"}"#)
    }

    /// Ready when the node is not stopping, the log takes writes and PostgreSQL is less than
    /// 10 s behind.
    func readiness() -> Response {
        if drain.isDraining {
            return JSONResponse.error(.serviceUnavailable,
                                      "draining: this node is stopping (SIGTERM); it still answers requests until its listener closes")
        }
        let status = checkpointer.status
        let lagSeconds = ServerMetrics.seconds(status.lag())
        if let stopped = log.stopReason {
            return JSONResponse.error(.serviceUnavailable, "the log accepts no writes: \(stopped)")
        }
        if let full = log.diskFullReason {
            return JSONResponse.error(.serviceUnavailable, "disk_full: \(full)")
        }
        if let refused = status.positionError {
            return JSONResponse.error(.serviceUnavailable, "\(refused.kind): \(refused)")
        }
        if let held = log.holdReason {
            return JSONResponse.error(.serviceUnavailable, "the log accepts no writes yet: \(held)")
        }
        if status.isHealingRegression, let regression = status.lastRegression {
            return JSONResponse.error(.serviceUnavailable,
                                      "checkpoint_regressed: PostgreSQL's checkpoint went back from LSN \(regression.fromLSN) "
                                          + "to \(regression.toLSN); the log after it is being applied again")
        }
        if let limit = log.configuration.maxLogSizeBytes, log.sizeBytes > limit {
            return JSONResponse.error(.serviceUnavailable, "the log is over its disk budget (\(log.sizeBytes) of \(limit) bytes)")
        }
        if status.overBudget {
            return JSONResponse.error(.serviceUnavailable,
                                      "compactor_over_budget: \(status.pendingKeys) pending keys reached --max-pending-keys "
                                          + "(\(status.maxPendingKeys)); the rest waits in the log and is applied in slices")
        }
        if status.lag() >= CheckpointerConfiguration.freshnessBound {
            let reason = status.lastError.map { "; last checkpoint error: \($0)" } ?? ""
            return JSONResponse.error(.serviceUnavailable,
                                      "checkpoint lag \(String(format: "%.1f", lagSeconds)) s is over 10 s\(reason)")
        }
        let freshness = status.lastFreshness.map { String(format: "%.3f", ServerMetrics.seconds($0)) } ?? "null"
        return JSONResponse.make(.ok, #"{"status":"ready","checkpoint_lag_seconds":\#(String(format: "%.3f", lagSeconds)),"#
            + #""last_checkpoint_freshness_seconds":\#(freshness)}"#)
    }

    func prometheus() -> Response {
        let bytes = metrics.render(log: log, checkpointer: checkpointer)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

import Foundation
