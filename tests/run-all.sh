#!/usr/bin/env bash
# Runs every test: the kTLS guest test (qemu), then every cargo test of the
# workspace (unit tests, end-to-end tests against the real binaries, peers),
# the pure-Rust unit tests again under Miri, each fuzz target for a bounded
# time from its seed corpus (fuzz/), and ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Miri and fuzz steps below need these; never skip them silently.
nightly="${RINGEST_NIGHTLY:-nightly}"
if ! rustup +"$nightly" component list --installed 2>/dev/null | grep -q '^miri' ||
  ! command -v cargo-fuzz >/dev/null; then
  echo "run-all: nightly with miri, or cargo-fuzz, is missing: run tests/install-deps.sh" >&2
  exit 1
fi
export KTLS_VM_CACHE="${KTLS_VM_CACHE:-$PWD/target/ktls-vm}"
bash tests/ktls-vm/ci.sh
# The Kafka destination is a cargo feature (it builds librdkafka with
# cmake); the tests need the binaries built with it. bench's kafka rows
# (bench/tests/kafka.rs) need bench's own Kafka client, the same librdkafka.
features=(--features ringest/kafka,bench/kafka)
cargo build --workspace --bins "${features[@]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "${features[@]}" 2>&1 | tee "$log" || status=$?

# Miri: the unit tests that need neither aws-lc (C) nor io_uring: record
# header and control parsing, error labels, the frame decoder (less its
# 4000-iteration random test, minutes under Miri; the fuzzer covers it).
cargo +"$nightly" miri test -p ringest --lib -- \
  record::header record::control record::tests::error_labels framing:: \
  --skip random_byte_soup 2>&1 | tee -a "$log" || status=1

# Fuzzing: each target for FUZZ_SECONDS_PER_TARGET from its seed corpus (new
# inputs go to a scratch folder, not to fuzz/corpus). A crash or a failed
# check fails the run; libFuzzer prints the input and fuzz/artifacts/ keeps it.
fuzz_seconds="${FUZZ_SECONDS_PER_TARGET:-40}"
fuzz_flags=(--debug-assertions) # release build, ASan (cargo-fuzz default)
cargo +"$nightly" fuzz build "${fuzz_flags[@]}"
fuzz_out=$(mktemp)
trap 'rm -f "$log" "$fuzz_out"' EXIT
for target in $(cargo +"$nightly" fuzz list); do
  scratch="target/fuzz-corpus/$target"
  mkdir -p "$scratch"
  dict=()
  if [ -f "fuzz/dict/$target.dict" ]; then dict=(-dict="fuzz/dict/$target.dict"); fi
  if cargo +"$nightly" fuzz run "${fuzz_flags[@]}" "$target" "$scratch" "fuzz/corpus/$target" -- \
    "${dict[@]}" -max_total_time="$fuzz_seconds" -print_final_stats=1 >"$fuzz_out" 2>&1; then
    awk -v t="$target" '/^stat::number_of_executed_units/ { n = $2 }
      /^stat::average_exec_per_sec/ { r = $2 }
      END { printf "fuzz %s: ok, %d runs, %d exec/s\n", t, n, r }' "$fuzz_out" | tee -a "$log"
  else
    tail -n 60 "$fuzz_out"
    echo "fuzz $target: FAILED, input in fuzz/artifacts/$target/" | tee -a "$log"
    status=1
  fi
done
# cargo prints one "test result" line per test binary (the last is often a
# doc-test run with 0 tests): sum them so the closing line tells the total.
# Each fuzz target counts as one test.
awk '/^test result:/ { p += $4; f += $6 }
  /^fuzz [a-z0-9_]+: ok/ { p += 1 }
  /^fuzz [a-z0-9_]+: FAILED/ { f += 1 }
  END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
