#!/usr/bin/env bash
# ci.sh: the kTLS guest-kernel test, as CI runs it. One command:
#
#   tests/ktls-vm/ci.sh
#
# 1. builds the release `ringest` and the examples `ktls_client` and
#    `ktls_selftest` (cargo build --release);
# 2. host: the selftest must report "kTLS unavailable" and skip cleanly (this
#    kernel has no CONFIG_TLS), and must refuse with --require;
# 3. makes the test PKI on the host (RSA keys are slow under TCG);
# 4. prepare.sh (cached), then run.sh boots Debian's 6.1 kernel under qemu
#    TCG and runs guest-ci.sh there: ktls_selftest --require, engine.sh (the
#    real ringest offloading: every cipher × TLS 1.2/1.3 with mutual auth,
#    close_notify mid-stream, KeyUpdate under auto and on, garbage),
#    forward.sh (ringest as a relay with forward ktls = "on", TLS 1.2 and
#    1.3 to a final ringest, loadgen verify), and bench.sh's TCG report;
# 5. exits non-zero unless the guest printed its PASS line and every part's
#    own summary line: qemu exits 0 whatever the guest did.
#
# The VM cache lives in $KTLS_VM_CACHE (default ~/.cache/ringest-ktls-vm):
# the first run downloads two Debian packages (~70 MB) and takes about 15 s
# more; later runs reuse it. About 1-2 minutes on 2 cores once built.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${KTLS_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ringest-ktls-vm}
export KTLS_VM_TIMEOUT_S=${KTLS_VM_TIMEOUT_S:-300}
started=$(date +%s)

echo "== build (release)"
(cd "$REPO" && cargo build --release -p ringest --bin ringest --example ktls_client --example ktls_selftest -p loadgen --bin loadgen)
REL="${CARGO_TARGET_DIR:-$REPO/target}/release"
SELFTEST="$REL/examples/ktls_selftest"
CLIENT="$REL/examples/ktls_client"
RINGEST="$REL/ringest"
LOADGEN="$REL/loadgen"

echo "== host: kTLS must be reported unavailable, and skipped"
host_out=$("$SELFTEST")
echo "$host_out"
if ! grep -q '^kTLS: unavailable (' <<<"$host_out"; then
    if grep -q '^kTLS: tls1' <<<"$host_out"; then
        echo "host kernel has kTLS: host fallback check not applicable"
    else
        echo "FAIL: no kTLS probe line on the host"
        exit 1
    fi
else
    grep -q '^skipped: kernel lacks kTLS$' <<<"$host_out" || { echo "FAIL: not skipped"; exit 1; }
    if "$SELFTEST" --require >/dev/null; then
        echo "FAIL: --require passed on a kernel without kTLS"
        exit 1
    fi
    echo "host: ok (skips without --require, fails with it)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ktls-vm-ci.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/extra"
"$CLIENT" pki "$WORK/extra/pki"
# forward.sh's refusing final trusts only this CA (another name, so the
# relay's certificate is refused as unknown_ca).
mkdir -p "$WORK/extra/pki-other"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=ktls-vm other CA" -keyout "$WORK/extra/pki-other/ca.key" \
    -out "$WORK/extra/pki-other/ca.pem" 2>/dev/null
cp "$HERE/selftest.sh" "$HERE/engine.sh" "$HERE/forward.sh" "$HERE/bench.sh" "$WORK/extra/"

echo "== guest: Debian 6.1 kernel under qemu TCG"
"$HERE/prepare.sh" "$CACHE"
LOG="$WORK/serial.log"
KTLS_VM_EXTRA="$WORK/extra" KTLS_VM_LOG="$LOG" \
    "$HERE/run.sh" "$CACHE" "$HERE/guest-ci.sh" "$RINGEST" "$CLIENT" "$SELFTEST" "$LOADGEN"

# run.sh saw the PASS line; each part must also have said it ran.
for want in '^ktls_selftest: [0-9]+ passed, 0 failed$' \
    '^KTLS-ENGINE: all cases passed$' \
    '^KTLS-FORWARD: all cases passed$' \
    '^KTLS-BENCH: PASS'; do
    grep -Eq "$want" "$LOG" || { echo "ci: FAIL: no line matching $want in the guest log"; exit 1; }
done
echo "ci: PASS in $(($(date +%s) - started))s"
