#!/usr/bin/env python3
"""A small gRPC client for Tally: streams increments and reads a count back.

    python3 -m venv /tmp/tally-grpc && /tmp/tally-grpc/bin/pip install grpcio grpcio-tools
    /tmp/tally-grpc/bin/python Examples/grpc-python/increment.py 127.0.0.1:9090

It compiles Protos/tally/v1/tally.proto into a temporary directory (grpcio-tools), opens one
Increment stream with three requests (the second a retry of the first: same request_id, so
it is counted once and acked with the same LSNs), and reads the key's count.
"""
import importlib
import os
import sys
import tempfile
import uuid

from grpc_tools import protoc
import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_stubs():
    out = tempfile.mkdtemp(prefix="tally-grpc-")
    protos = os.path.join(ROOT, "Protos")
    status = protoc.main(["protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}",
                          os.path.join(protos, "tally/v1/tally.proto")])
    if status != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    return importlib.import_module("tally.v1.tally_pb2"), importlib.import_module("tally.v1.tally_pb2_grpc")


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9090"
    pb, rpc = load_stubs()
    key = str(uuid.uuid4())
    first = pb.IncrementRequest(increments=[pb.Increment(key=key, value=5), pb.Increment(key=key, value=7)],
                                request_id=f"example-{uuid.uuid4()}")
    requests = [first, first, pb.IncrementRequest(increments=[pb.Increment(key=key, value=1)])]
    with grpc.insecure_channel(target) as channel:
        tally = rpc.TallyStub(channel)
        for ack in tally.Increment(iter(requests)):
            print(f"ack: LSN {ack.first_lsn}-{ack.last_lsn}, {ack.count} increments, request_id {ack.request_id!r}")
        count = tally.GetCount(pb.GetCountRequest(key=key))
        print(f"count of {count.key}: total {count.total} (persisted {count.persisted}, pending {count.pending})")


if __name__ == "__main__":
    main()
