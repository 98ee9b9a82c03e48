#!/bin/sh
# Guest script: the kTLS building blocks end to end (engine/examples/ktls_selftest/).
# Runs as /test.sh in the guest; a non-zero exit makes /init print
# "KTLS-VM-RESULT: FAIL".
ktls_selftest --require
rc=$?
# The kernel's own counters: TlsCurrRxSw/TlsRxSw show the sockets really were
# decrypted by the kernel; TlsDecryptError counts the garbage and KeyUpdate cases.
echo "--- /proc/net/tls_stat"
cat /proc/net/tls_stat 2>/dev/null || echo "(no /proc/net/tls_stat)"
exit $rc
