#!/usr/bin/env bash
# run.sh CACHE_DIR GUEST_SCRIPT BIN...
#
# Boots the kernel that prepare.sh cached, under qemu TCG (no KVM: the
# /dev/kvm here is not hardware KVM), with the base initramfs plus an overlay
# holding each BIN in /usr/local/bin (on PATH), every library `ldd` lists for
# it at the same absolute path, and GUEST_SCRIPT as /test.sh. Prints the
# serial log with \r stripped. Exits 0 only if the guest printed its own
# `KTLS-VM-RESULT: PASS` line: qemu exits 0 whatever the guest did.
#
# Environment:
#   KTLS_VM_TIMEOUT_S   wall-clock limit for qemu (default 300)
#   KTLS_VM_LOG         also keep the serial log in this file
#   KTLS_VM_KERNEL      "vmlinuz" to boot the bzImage instead of vmlinux
#   KTLS_VM_EXTRA       a folder copied into the guest as /extra (PKI,
#                       more guest scripts)
set -euo pipefail

CACHE_DIR=${1:?usage: run.sh CACHE_DIR GUEST_SCRIPT BIN...}
GUEST_SCRIPT=${2:?usage: run.sh CACHE_DIR GUEST_SCRIPT BIN...}
shift 2
TIMEOUT_S=${KTLS_VM_TIMEOUT_S:-300}

die() { echo "run: error: $*" >&2; exit 1; }
[ -f "$CACHE_DIR/base.cpio.gz" ] || die "no $CACHE_DIR/base.cpio.gz: run prepare.sh $CACHE_DIR first"
[ -f "$GUEST_SCRIPT" ] || die "no guest script $GUEST_SCRIPT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ktls-vm-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
OVL="$WORK/overlay"
mkdir -p "$OVL/usr/local/bin"

for bin in "$@"; do
    [ -x "$bin" ] || die "not an executable: $bin"
    cp -L "$bin" "$OVL/usr/local/bin/"
    # "libx.so => /path (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)";
    # a static binary has none (and ldd exits non-zero).
    for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
        [ -f "$lib" ] || continue
        mkdir -p "$OVL$(dirname "$lib")"
        cp -L "$lib" "$OVL$lib"
    done
done
cp "$GUEST_SCRIPT" "$OVL/test.sh"
if [ -n "${KTLS_VM_EXTRA:-}" ]; then
    [ -d "$KTLS_VM_EXTRA" ] || die "KTLS_VM_EXTRA=$KTLS_VM_EXTRA is not a folder"
    cp -a "$KTLS_VM_EXTRA" "$OVL/extra"
fi
chmod 755 "$OVL/test.sh"

# Gzip cpio archives concatenate: the overlay's files land on top of the base.
(cd "$OVL" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$WORK/overlay.cpio.gz"
cat "$CACHE_DIR/base.cpio.gz" "$WORK/overlay.cpio.gz" >"$WORK/initrd.gz"

KERNEL="$CACHE_DIR/vmlinux"
if [ "${KTLS_VM_KERNEL:-}" = vmlinuz ] || [ ! -f "$KERNEL" ]; then
    KERNEL="$CACHE_DIR/vmlinuz"
fi

LOG="$WORK/serial.log"
started=$(date +%s)
set +e
timeout --kill-after=10 "$TIMEOUT_S" qemu-system-x86_64 \
    -accel tcg -cpu max -m 1024 -smp 2 \
    -nographic -no-reboot \
    -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
    </dev/null 2>&1 | tr -d '\r' >"$LOG"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - started))

cat "$LOG"
[ -n "${KTLS_VM_LOG:-}" ] && cp "$LOG" "$KTLS_VM_LOG"

if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "run: FAIL: qemu killed after ${TIMEOUT_S}s (guest hung or too slow)"
    exit 1
fi
if grep -qx 'KTLS-VM-RESULT: PASS' "$LOG"; then
    echo "run: PASS (guest result line seen; qemu exit $rc; ${elapsed}s)"
    exit 0
fi
why=$(grep -m1 '^KTLS-VM-RESULT:' "$LOG" || echo "no KTLS-VM-RESULT line: the guest did not run its tests")
echo "run: FAIL: $why (qemu exit $rc; ${elapsed}s)"
exit 1
