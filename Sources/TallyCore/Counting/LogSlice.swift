import TallyLog

/// Reads the log into a delta table up to a bound on its keys: the one way both the
/// compactor's catch-up and `tally recover` read a large log in bounded memory.
///
/// A slice ends only between requests: a tagged request's records are counted (or dropped
/// as a retry) together, by the checkpoint that holds its request entry. So a slice may pass
/// `maxKeys` by the keys of one request (at most one append, 16,384 records).
struct LogSlice {
    var table: DeltaTable
    /// The read stopped at `maxKeys` before `through`: more slices follow.
    var endedEarly: Bool

    /// - Parameters:
    ///   - onRequest: told of every request entry read.
    ///   - onProgress: told, every `progressEvery` records, of the last LSN read.
    static func read(from reader: any RecordSource, from first: LSN, through last: LSN, maxKeys: Int,
                     onRequest: ((RequestEntry) -> Void)? = nil, progressEvery: Int = 1 << 20,
                     onProgress: ((LSN) -> Void)? = nil) throws -> LogSlice {
        precondition(maxKeys >= 1 && first >= 1)
        var table = DeltaTable(after: first - 1)
        guard first <= last else { return LogSlice(table: table, endedEarly: false) }
        var requestEnd: LSN?
        var endedEarly = false
        var sinceProgress = 0
        do {
            try reader.forEachEntry(from: first, through: last) { entry in
                switch entry {
                case .request(let request):
                    table.beginRequest(request)
                    onRequest?(request)
                    requestEnd = request.lastLSN
                case .record(let lsn, let record):
                    table.absorb(record, at: lsn)
                    if lsn == requestEnd { requestEnd = nil }
                    sinceProgress += 1
                    if sinceProgress == progressEvery {
                        sinceProgress = 0
                        onProgress?(lsn)
                    }
                    if requestEnd == nil && table.keyCount >= maxKeys && lsn < last { throw SliceFull() }
                }
            }
        } catch is SliceFull {
            endedEarly = true
        }
        guard endedEarly || table.lastLSN == last else {
            throw CompactorError.logEndsEarly(expectedThrough: last, foundThrough: table.lastLSN)
        }
        return LogSlice(table: table, endedEarly: endedEarly)
    }

    /// Ends a read at the bound.
    private struct SliceFull: Error {}
}
