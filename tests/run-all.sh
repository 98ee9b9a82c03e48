#!/usr/bin/env bash
# Runs every test: the kTLS guest test (qemu), then every cargo test of the
# workspace (unit tests, end-to-end tests against the real binaries, peers).
set -euo pipefail
cd "$(dirname "$0")/.."
export KTLS_VM_CACHE="${KTLS_VM_CACHE:-$PWD/target/ktls-vm}"
if [ -x tests/ktls-vm/ci.sh ]; then
  tests/ktls-vm/ci.sh
fi
cargo build --workspace --bins
cargo test --workspace
