#!/usr/bin/env bash
# Regenerates the Swift code for Tally's gRPC API (messages + server + client stubs).
#
#   gen-proto.sh PROTOC_GEN_SWIFT PROTOC_GEN_GRPC_SWIFT_2 [PROTO_DIR] [OUT_DIR]
#
# PROTOC_GEN_SWIFT         protoc-gen-swift 1.39.0 (swift-protobuf, product "protoc-gen-swift")
# PROTOC_GEN_GRPC_SWIFT_2  protoc-gen-grpc-swift-2 2.4.1 (grpc-swift-protobuf, product "protoc-gen-grpc-swift-2")
# PROTO_DIR                default: Protos at the top of the repository
# OUT_DIR                  default: Sources/TallyProtos (replaced wholesale)
#
# Needs protoc (Debian: protobuf-compiler). Output:
#   OUT_DIR/tally/v1/tally.pb.swift          messages           (protoc-gen-swift)
#   OUT_DIR/tally/v1/tally.grpc.swift        server + client    (protoc-gen-grpc-swift-2)
#   OUT_DIR/grpc/health/v1/health.pb.swift
#   OUT_DIR/grpc/health/v1/health.grpc.swift
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
gen_swift=$(realpath "$1")
gen_grpc=$(realpath "$2")
proto_dir=$(realpath "${3:-$here/../Protos}")
out_dir=$(realpath -m "${4:-$here/../Sources/TallyProtos}")

for bin in "$gen_swift" "$gen_grpc"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
done
command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

# Other plugin versions generate different code (and code that may not match the runtime
# library versions in Package.resolved), so refuse them rather than produce a silent diff.
"$gen_swift" --version | grep -qx 'protoc-gen-swift 1.39.0' \
  || { echo "expected protoc-gen-swift 1.39.0, got: $("$gen_swift" --version)" >&2; exit 1; }
"$gen_grpc" --version | grep -qx 'protoc-gen-grpc-swift-2 2.4.1' \
  || { echo "expected protoc-gen-grpc-swift-2 2.4.1, got: $("$gen_grpc" --version)" >&2; exit 1; }

# Paths relative to PROTO_DIR: they decide the output paths and what the generated code
# records as the proto file names (e.g. "tally/v1/tally.proto").
protos=(tally/v1/tally.proto grpc/health/v1/health.proto)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$proto_dir"
protoc \
  --plugin=protoc-gen-swift="$gen_swift" \
  --plugin=protoc-gen-grpc-swift-2="$gen_grpc" \
  --swift_out="$tmp" \
  --swift_opt=Visibility=Public \
  --swift_opt=FileNaming=FullPath \
  --grpc-swift-2_out="$tmp" \
  --grpc-swift-2_opt=Visibility=Public \
  --grpc-swift-2_opt=Server=true \
  --grpc-swift-2_opt=Client=true \
  --grpc-swift-2_opt=FileNaming=FullPath \
  "${protos[@]}"

# OUT_DIR is replaced wholesale, so it must hold generated files only: refuse otherwise.
if [ -d "$out_dir" ]; then
  stray=$(find "$out_dir" -type f ! \( -name '*.pb.swift' -o -name '*.grpc.swift' \) | head -1)
  [ -z "$stray" ] || { echo "refusing to replace $out_dir: it holds $stray" >&2; exit 1; }
  stray=$(find "$out_dir" -type f -exec grep -L -x '// DO NOT EDIT.' {} + | head -1)
  [ -z "$stray" ] || { echo "refusing to replace $out_dir: $stray is not generated" >&2; exit 1; }
fi
rm -rf "$out_dir"
mkdir -p "$(dirname "$out_dir")"
mv "$tmp" "$out_dir"
trap - EXIT
chmod -R u=rwX,go=rX "$out_dir"
find "$out_dir" -type f | sort
