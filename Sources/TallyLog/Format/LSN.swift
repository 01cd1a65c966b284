/// A log sequence number: the position of one record in a node's log.
///
/// LSNs are consecutive from 1 and never reused, so "everything up to LSN n" names a prefix
/// of the log exactly. That is what the checkpoint stores and what truncation deletes through.
public typealias LSN = UInt64
