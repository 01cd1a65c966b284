import Foundation
import TallyLog

/// Turns a delta table into the batch a checkpoint applies.
///
/// Records of tagged requests are in the table's sums like any other. Before the
/// transaction, the sink is asked which of the table's request ids it already records (a
/// retry that another node, or this one before a crash, counted already); those requests,
/// and duplicates within the table that were added anyway, are taken out of the deltas by
/// reading their records again from the log. The rest go into the batch as request rows,
/// which the transaction inserts; if one of them was recorded by another node meanwhile,
/// the transaction rolls back (`requestTakenMeanwhile`) and the next pass asks again. So a
/// request id is counted once across nodes, crashes and retries, and the table stays small
/// (no per-request sums are kept in memory).
struct CheckpointPlan: Sendable {
    var batch: CheckpointBatch
    /// Requests whose records were taken out: already counted, or duplicates.
    var droppedRequests: [RequestSpan]

    static func make(table: DeltaTable, node: UUID, sink: any CheckpointSink, reader: any RecordSource,
                     io: BlockingExecutor?) async throws -> CheckpointPlan {
        let candidates = table.requests.filter { $0.state == .counted }
        let known = candidates.isEmpty ? [] : try await sink.knownRequests(candidates.map(\.entry.tag.idString))
        let dropped = table.requests.filter { span in
            span.state == .duplicateCounted || (span.state == .counted && known.contains(span.entry.tag.idString))
        }
        let skippedDuplicates = table.requests.filter { $0.state == .duplicateSkipped }
        let compute: @Sendable () throws -> [KeyDelta] = {
            table.sortedDeltas(excluding: dropped.isEmpty ? [:] : try reader.sums(of: dropped))
        }
        // Sorting a million keys takes a few hundred milliseconds: not on the cooperative
        // pool, whose two threads here also run the HTTP handlers.
        let deltas: [KeyDelta]
        if let io {
            deltas = try await io.run(compute)
        } else {
            deltas = try compute()
        }
        let rows = candidates.filter { !known.contains($0.entry.tag.idString) }.map { span in
            RequestRow(id: span.entry.tag.idString, firstLSN: span.entry.firstLSN, count: span.entry.count,
                       digest: span.entry.tag.digest, arrivalMillis: span.arrivalMillis)
        }.sorted { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
        let batch = CheckpointBatch(node: node, previousLSN: table.baseLSN, lsn: table.lastLSN, deltas: deltas, requests: rows)
        return CheckpointPlan(batch: batch, droppedRequests: dropped + skippedDuplicates)
    }
}
