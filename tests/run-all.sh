#!/usr/bin/env bash
# Runs every test: the kTLS guest test (qemu), then every cargo test of the
# workspace (unit tests, end-to-end tests against the real binaries, peers),
# and ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
export KTLS_VM_CACHE="${KTLS_VM_CACHE:-$PWD/target/ktls-vm}"
bash tests/ktls-vm/ci.sh
cargo build --workspace --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# cargo prints one "test result" line per test binary (the last is often a
# doc-test run with 0 tests): sum them so the closing line tells the total.
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
