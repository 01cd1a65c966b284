#!/usr/bin/env bash
# make fuzz: coverage-guided fuzzing (libFuzzer + AddressSanitizer) of the two parsers that meet
# untrusted bytes: the log segment reader and the strict JSON intake. See Fuzz/Package.swift.
#
#   scripts/fuzz.sh                       every target, FUZZ_SECONDS (default 60) each, one after another
#   scripts/fuzz.sh FuzzBulkParser        only the targets named
#   FUZZ_SECONDS=600 scripts/fuzz.sh      longer
#   FUZZ_CONFIG=debug scripts/fuzz.sh     debug build: slower, but Swift's own bounds checks on
#                                         unsafe buffer subscripts and slices stay in (-O drops them)
#   FUZZ_FRESH=1 scripts/fuzz.sh          start from the seeds again, not from what earlier runs found
#   FUZZ_ARGS='-jobs=2' scripts/fuzz.sh   more libFuzzer flags
#
# Each target runs on a working corpus, Fuzz/.work/<target>/corpus: a copy of the committed seeds
# Fuzz/Corpus/<target> (never written to) plus what the fuzzer found in earlier runs. Findings go
# to Fuzz/.work/<target>/ (crash-*, timeout-*, oom-*, leak-*); the script exits 1 if there is any,
# and prints how to reproduce and minimize it. Nothing to install beyond `make deps`: the fuzzer
# and sanitizer runtimes ship with the Swift toolchain (usr/lib/clang/*/lib/linux).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
CONFIG=${FUZZ_CONFIG:-release}
ALL_TARGETS=(FuzzSegmentReader FuzzSegmentFrames FuzzIncrementParser FuzzBulkParser)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
for target in "${TARGETS[@]}"; do
  [ -d "Fuzz/Corpus/$target" ] || { echo "unknown fuzz target: $target (have: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

# Swift's package identity of the repository is its directory's name; "fuzz" would collide with
# the Fuzz package's own identity, and SwiftPM would then not find the tally products.
if [ "$(basename "$PWD" | tr '[:upper:]' '[:lower:]')" = fuzz ]; then
  echo "the repository's directory is named '$(basename "$PWD")', which SwiftPM confuses with the Fuzz/ package:" \
       "clone it under another name" >&2
  exit 2
fi

echo "== build ($CONFIG, -sanitize=fuzzer,address)"
start=$(date +%s)
swift build --package-path Fuzz -c "$CONFIG" -Xswiftc -sanitize=fuzzer,address
echo "build took $(( $(date +%s) - start )) s"
bin=$(swift build --package-path Fuzz -c "$CONFIG" --show-bin-path)

symbolizer=$(command -v llvm-symbolizer || true)
# Leak detection stays on (libFuzzer saves a leak-* input); ASAN_OPTIONS=detect_leaks=0 turns it off.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:symbolize=1${symbolizer:+:external_symbolizer_path=$symbolizer}}
# A Swift trap is reported by libFuzzer's own stack trace; Swift's backtracer would also run and
# read the crashed process's memory, which AddressSanitizer then reports as a second, bogus error.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
# The segment targets write each input to a file: on tmpfs when there is one.
if [ -z "${FUZZ_TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then FUZZ_TMPDIR=/dev/shm; fi
export TMPDIR=${FUZZ_TMPDIR:-${TMPDIR:-/tmp}}

found=()
summary=()
for target in "${TARGETS[@]}"; do
  work="Fuzz/.work/$target"
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work/corpus"
  mkdir -p "$work/corpus"
  cp -n "Fuzz/Corpus/$target"/* "$work/corpus/" 2>/dev/null || true
  dict=()
  [ -f "Fuzz/Dictionaries/$target.dict" ] && dict=("-dict=Fuzz/Dictionaries/$target.dict")
  before=$(ls "$work" | grep -E '^(crash|timeout|oom|leak)-' || true)
  echo "== $target: ${SECONDS_PER_TARGET} s on $work/corpus ($(ls "$work/corpus" | wc -l) inputs)"
  log="$work/fuzz.log"
  status=0
  # shellcheck disable=SC2086
  "$bin/$target" "$work/corpus" "${dict[@]}" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  rate=$([ -n "$runs" ] && [ -n "$secs" ] && [ "$secs" -gt 0 ] && echo "$(( runs / secs )) exec/s" || echo "? exec/s")
  summary+=("$target: ${runs:-?} runs, $rate, ${cov:-no coverage line}, exit $status")
  echo "   ${summary[-1]}"
  after=$(ls "$work" | grep -E '^(crash|timeout|oom|leak)-' || true)
  new=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
  if [ "$status" -ne 0 ] || [ -n "$new" ]; then
    grep -E 'FUZZ PROPERTY VIOLATION|ERROR: (AddressSanitizer|libFuzzer)|Fatal error|Swift runtime failure|SUMMARY' "$log" \
      | head -6 | sed 's/^/   /' || true
    for artifact in $new; do found+=("$work/$artifact"); done
    [ -n "$new" ] || found+=("$log (exit $status, no input saved)")
    echo "   log: $log"
  fi
done

echo "== summary"
printf '   %s\n' "${summary[@]}"
if [ ${#found[@]} -gt 0 ]; then
  echo "FOUND ${#found[@]} finding(s):"
  for artifact in "${found[@]}"; do
    target=$(basename "$(dirname "$artifact")")
    echo "   $artifact"
    echo "      reproduce: $bin/$target $artifact"
    echo "      minimize:  $bin/$target -minimize_crash=1 -max_total_time=60 -exact_artifact_path=$artifact.min $artifact"
  done
  exit 1
fi
echo "no findings"
