#!/bin/sh
# bench.sh: server CPU per message with kTLS offload and without.
#
#   tests/ktls-vm/bench.sh [--messages M] [--connections C] [--suite IANA_NAME] [--pki DIR]
#
# Runs `ringest` twice on loopback with one TLS source, first `ktls = "off"`
# (userspace record layer), then `ktls = "on"` (kernel decrypts), sends the
# same M octet-counted messages over C connections with `ktls_client`, and
# reads ringest's own CPU time (every thread: /proc/PID/task/*/schedstat)
# from "ready" to the last message written. Prints CPU ns per message for
# both and the difference.
#
# The default suite is TLS 1.2 ECDHE-ECDSA AES-128-GCM: it is offloaded on
# any kernel with kTLS (TLS 1.3 only from Linux 6.14 under `auto`; this
# script uses `on`, so a TLS 1.3 suite works too, KeyUpdates aside).
#
# Needs `ringest` and `ktls_client` on PATH, or RINGEST / KTLS_CLIENT set
# (cargo build --release -p ringest --bin ringest --example ktls_client).
#
# It reports instead of measuring where a figure would mean nothing:
# - the kernel has no kTLS (ringest's start-up probe says "unavailable"):
#   there is nothing to compare, exit 0;
# - the machine is qemu without KVM (TCG emulates every instruction, AES
#   included; KTLS_BENCH_TCG=1 forces this): both modes still run and are
#   checked, and the figures are not printed.
# POSIX sh: runs under bash on a host and under busybox in the test guest.
set -u

M=200000
C=8
SUITE=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
PKI=""
while [ $# -gt 0 ]; do
    case "$1" in
    --messages) M=$2; shift 2 ;;
    --connections) C=$2; shift 2 ;;
    --suite) SUITE=$2; shift 2 ;;
    --pki) PKI=$2; shift 2 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
RINGEST=${RINGEST:-ringest}
KTLS_CLIENT=${KTLS_CLIENT:-ktls_client}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringest-ktls-bench.XXXXXX")
PORT=${KTLS_BENCH_PORT:-7900}
STATS=127.0.0.1:${KTLS_BENCH_STATS_PORT:-7999}
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$PKI" ]; then
    PKI=$WORK/pki
    "$KTLS_CLIENT" pki "$PKI" >/dev/null || exit 1
fi

is_tcg() {
    [ "${KTLS_BENCH_TCG:-0}" = 1 ] && return 0
    vendor=$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)
    clock=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)
    # qemu's machine, but not KVM's paravirtual clock: emulated (TCG).
    [ "$vendor" = QEMU ] && [ "$clock" != kvm-clock ]
}

# ringest's CPU time so far, in ns, summed over its threads.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}

metric() {
    "$KTLS_CLIENT" metrics "$STATS" | grep -F "$1" | awk '{s += $NF} END {print s + 0}'
}

# run MODE: prints "ok CPU_NS PATH_LABEL PROBE", or "unavailable PROBE".
run() {
    mode=$1
    cat >"$WORK/ringest.toml" <<EOF
shards = 1

[[source]]
name = "bench"
listen = "127.0.0.1:$PORT"
transport = "tls"
framing = "octet-counted"
ktls = "$mode"
max_connections = 10000
[source.tls]
cert_file = "$PKI/server-ecdsa.pem"
key_file = "$PKI/server-ecdsa.key"
ca_file = "$PKI/ca.pem"
peer_verify = "required-trusted"

[[destination]]
name = "out"
type = "file"
path = "$WORK/out-$mode.log"
fsync = "never"

[stats]
listen = "$STATS"
EOF
    "$RINGEST" serve --config "$WORK/ringest.toml" >"$WORK/out.txt" 2>"$WORK/err.txt" &
    pid=$!
    for _ in $(seq 1 200); do
        grep -q 'ringest: ready' "$WORK/out.txt" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    probe=$(grep -m1 'kTLS: ' "$WORK/err.txt" | sed 's/^INFO  //')
    if ! grep -q 'ringest: ready' "$WORK/out.txt"; then
        wait "$pid" 2>/dev/null
        pid=""
        case "$probe" in
        *unavailable*) echo "unavailable $probe"; return 0 ;;
        esac
        echo "bench: ringest (ktls = $mode) did not start:" >&2
        cat "$WORK/err.txt" >&2
        return 1
    fi
    before=$(cpu_ns "$pid")
    if ! "$KTLS_CLIENT" send --target "127.0.0.1:$PORT" --ca "$PKI/ca.pem" \
        --cert "$PKI/client.pem" --key "$PKI/client.key" --suite "$SUITE" \
        --connections "$C" --count "$M" >/dev/null; then
        echo "bench: client failed (ktls = $mode)" >&2
        return 1
    fi
    written=0
    for _ in $(seq 1 600); do
        written=$(metric 'ringest_messages_written_total{source="bench"}')
        [ "$written" -ge "$M" ] && break
        sleep 0.1
    done
    after=$(cpu_ns "$pid")
    path=$("$KTLS_CLIENT" metrics "$STATS" | grep -F 'ringest_tls_connections_total{source="bench"' |
        sed 's/.*path="\([a-z0-9_]*\)"} \([0-9]*\)/\1 x\2/' | tr '\n' ' ')
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    if [ "$written" != "$M" ]; then
        echo "bench: ktls = $mode: $written of $M messages written" >&2
        return 1
    fi
    echo "ok $((after - before)) $path| $probe"
}

off=$(run off) || exit 1
probe=${off#*| }
echo "bench: $probe"
case "$probe" in
*unavailable*)
    echo "bench: this kernel has no kTLS: offload cannot be measured here (run on a host with CONFIG_TLS)"
    exit 0
    ;;
esac
on=$(run on) || exit 1
case "$on" in
unavailable*) echo "bench: ktls = on refused to start: ${on#unavailable }"; exit 1 ;;
esac
set -- $off
off_ns=$2
off_path=$3
set -- $on
on_ns=$2
on_path=$3
case "$on_path" in
ktls) ;;
*) echo "bench: ktls = on did not offload (path $on_path)"; exit 1 ;;
esac

if is_tcg; then
    echo "bench: ran $M messages over $C connections with ktls = off (path $off_path) and on (path $on_path)"
    echo "bench: under TCG (qemu without KVM) the figures mean nothing, so they are not printed"
    exit 0
fi
awk -v m="$M" -v off="$off_ns" -v on="$on_ns" -v suite="$SUITE" -v c="$C" 'BEGIN {
    printf "bench: %s, %d messages over %d connections\n", suite, m, c
    printf "bench: ktls = off (userspace record layer): %8.1f ms CPU, %7.1f ns/message\n", off / 1e6, off / m
    printf "bench: ktls = on  (kernel decrypts):        %8.1f ms CPU, %7.1f ns/message\n", on / 1e6, on / m
    if (off > 0) printf "bench: offload changes server CPU per message by %+.1f%%\n", (on - off) * 100 / off
}'
