#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into Fuzz/Corpus/ (committed; rerun after a format change).

Segment seeds are built byte by byte from docs/log-format.md and the format comments in
Sources/TallyLog/Format (CRC-32C here, lz4 through Debian's liblz4 with ctypes), plus copies of
the committed samples Tests/TallyLogTests/Fixtures/sample-v1 and sample-v2. They are valid
segments (header and frame CRCs hold, v1 and v2, raw and lz4 frames, request sections) so that
the fuzzer starts past the checksums, and a few damaged ones (torn tail, corruption followed by
valid frames, zero tail, LSN gap, bad header). FuzzSegmentFrames also gets "marked" segments:
frames flagged lz4 whose payload is stored uncompressed (stored length = raw length), which that
target compresses itself, so that mutations of records and request sections go through lz4.

Usage: python3 Fuzz/make-seeds.py   (from the repository root or anywhere)
"""
import ctypes
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Fuzz", "Corpus")

# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78.
_TABLE = []
for _byte in range(256):
    _crc = _byte
    for _ in range(8):
        _crc = (_crc >> 1) ^ 0x82F63B78 if _crc & 1 else _crc >> 1
    _TABLE.append(_crc)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_lz4 = ctypes.CDLL("liblz4.so.1")


def lz4_compress(raw):
    """lz4 block of raw, or None when it is not smaller (the writer then stores the frame raw)."""
    out = ctypes.create_string_buffer(len(raw))
    n = _lz4.LZ4_compress_default(raw, out, len(raw), len(raw) - 1)
    return out.raw[:n] if n > 0 else None


NODE = bytes.fromhex("7a11e000000040008000000000000001")
HOT = bytes.fromhex("0b5e55ed00004000800000000000c0de")


def segment_header(first_lsn, version=2, node=NODE):
    head = b"TALLYWAL" + struct.pack("<I", version) + node + struct.pack("<Q", first_lsn)
    return head + struct.pack("<I", crc32c(head))


def record(key, value, millis):
    return key + struct.pack("<qq", value, millis)


def request_section(entries):
    """entries: (first record index, record count, digest, id bytes)."""
    out = struct.pack("<H", len(entries))
    for index, count, digest, ident in entries:
        out += struct.pack("<IIQB", index, count, digest, len(ident)) + ident
    return out


def frame(first_lsn, records, requests=None, compress=True, mark=False):
    """One frame. mark: lz4 flag with the payload stored raw (for FuzzSegmentFrames to compress)."""
    raw = b"".join(records) + (request_section(requests) if requests else b"")
    flags = 2 if requests else 0
    payload = raw
    if mark:
        flags |= 1
    elif compress:
        compressed = lz4_compress(raw)
        if compressed is not None:
            flags |= 1
            payload = compressed
    head = struct.pack("<IHHQII", len(payload), flags, 0, first_lsn, len(records), len(raw))
    return head + struct.pack("<I", crc32c(payload, crc32c(head))) + payload


def hot(count, value=5, start=1_764_000_000_100):
    return [record(HOT, value, start + i) for i in range(count)]


def distinct(count, seed=1):
    return [record(bytes((seed * 37 + i * 11 + j * 7) & 0xFF for j in range(16)), seed + i, 1_764_547_200_000 + i * 977)
            for i in range(count)]


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def segments():
    """(name, bytes, marked) for the segment targets."""
    fixtures = os.path.join(ROOT, "Tests", "TallyLogTests", "Fixtures")
    for version in ("v1", "v2"):
        with open(os.path.join(fixtures, f"sample-{version}", "00000000000000000001.wal"), "rb") as f:
            yield f"sample-{version}.wal", f.read(), False

    yield "v2-empty.wal", segment_header(1), False
    yield "v1-raw-lz4.wal", (segment_header(1, version=1) + frame(1, distinct(1)) + frame(2, hot(8))
                              + frame(10, hot(3, value=2))), False
    yield "v2-lz4-requests.wal", (segment_header(1) + frame(1, hot(6), requests=[(0, 4, 0x0123456789ABCDEF, b"order-0001"),
                                                                              (5, 1, 0xFEDCBA9876543210, b"retry-7f3a")])
                                   + frame(7, hot(4), requests=[(0, 4, 1, b"x" * 64)])), False
    yield "v2-raw-requests.wal", (segment_header(1) + frame(1, distinct(3), requests=[(0, 3, 42, b"bulk ~!")])
                                   + frame(4, distinct(2, seed=9), requests=[(0, 1, 7, b"a"), (1, 1, 8, b"b")])), False
    yield "v2-mixed.wal", (segment_header(100) + frame(100, distinct(1)) + frame(101, hot(16))
                           + frame(117, hot(2), requests=[(1, 1, 3, b"req")]) + frame(119, distinct(2), compress=False)), False

    good = segment_header(1) + frame(1, hot(4)) + frame(5, distinct(1))
    tail = frame(6, hot(8))
    yield "v2-torn-tail.wal", good + tail[: len(tail) // 2], False
    yield "v2-zero-tail.wal", good + bytes(64), False
    broken = bytearray(frame(6, distinct(2)))
    broken[40] ^= 0x55
    yield "v2-corrupt-then-valid.wal", good + bytes(broken) + frame(8, hot(3)), False
    yield "v2-lsn-gap.wal", good + frame(9, hot(2)), False
    bad_header = bytearray(good)
    bad_header[37] ^= 1
    yield "v2-bad-header-crc.wal", bytes(bad_header), False
    yield "v1-requests-flag.wal", segment_header(1, version=1) + frame(1, hot(2), requests=[(0, 2, 5, b"v1")]), False

    # Fuzz findings, minimized (the regression tests in Tests/ hold the same bytes).
    # FuzzSegmentFrames: a header whose CRC holds over first LSN 0; Log.open trapped on it.
    yield "regression-first-lsn-0.wal", segment_header(0, node=bytes.fromhex("7a11e000000040008000000000000000")), False

    # Marked: FuzzSegmentFrames compresses these frames itself.
    yield "marked-v2-requests.wal", (segment_header(1) + frame(1, hot(8), requests=[(0, 2, 1, b"first"), (4, 4, 2, b"second")], mark=True)
                                      + frame(9, hot(4), mark=True)), True
    yield "marked-v1.wal", segment_header(1, version=1) + frame(1, hot(8), mark=True) + frame(9, distinct(1)), True


def json_bodies():
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    valid = [
        f'{{"key":"{uuid}","value":5}}',
        f'{{"value":5,"key":"{uuid}"}}',
        f' \n\t{{ "key" : "{uuid}" ,\r\n "value" : 5 }} \n',
        f'{{"key":"{uuid.upper()}","value":9223372036854775807}}',
        f'{{"key":"{uuid}","value":1}}',
    ]
    invalid = [
        "", "{}", "[1,2]", "null", "{",
        f'{{"key":"{uuid}","value":5',
        f'{{"key":"{uuid}","value":5,"extra":1}}',
        f'{{"key":"{uuid}","key":"{uuid}","value":5}}',
        f'{{"\\u006bey":"{uuid}","value":5}}',
        f'{{"key":"{uuid}","value":"5"}}',
        f'{{"key":"{uuid}","value":0}}',
        f'{{"key":"{uuid}","value":-1}}',
        f'{{"key":"{uuid}","value":1.5}}',
        f'{{"key":"{uuid}","value":1e3}}',
        f'{{"key":"{uuid}","value":9223372036854775808}}',
        f'{{"key":"{uuid}","value":007}}',
        f'{{"key":"123e4567e89b12d3a456426614174000","value":5}}',
        f'{{"key":"123e4567-e89b-12d3-a456-42661417400\\u0030","value":5}}',
        f'{{"key":"{uuid}","value":5}} x',
        f'{{"key":"{uuid}","value":5}}{{}}',
    ]
    return valid, invalid


def main():
    for target in ("FuzzSegmentReader", "FuzzSegmentFrames", "FuzzIncrementParser", "FuzzBulkParser"):
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
    for name, data, marked in segments():
        if not marked:
            write("FuzzSegmentReader", name, data)
        write("FuzzSegmentFrames", name, data)

    valid, invalid = json_bodies()
    for index, body in enumerate(valid):
        write("FuzzIncrementParser", f"valid-{index}.json", body.encode())
    for index, body in enumerate(invalid):
        write("FuzzIncrementParser", f"invalid-{index}.json", body.encode())

    uuid2 = "0b5e55ed-0000-4000-8000-00000000c0de"
    ndjson_valid = [
        valid[0] + "\n",
        valid[0] + "\n" + valid[1],
        valid[0] + "\r\n" + valid[3] + "\r\n" + f'{{"key":"{uuid2}","value":2}}\n',
    ]
    ndjson_invalid = [
        "", "\n", valid[0] + "\n\n", valid[0] + "\n \t\r\n" + valid[1],
        valid[0] + "\n" + invalid[6] + "\n",
        "\n".join([valid[0]] * 5),
    ]
    for index, body in enumerate(ndjson_valid):
        write("FuzzBulkParser", f"valid-{index}.ndjson", body.encode())
    for index, body in enumerate(ndjson_invalid):
        write("FuzzBulkParser", f"invalid-{index}.ndjson", body.encode())


if __name__ == "__main__":
    main()
