#!/bin/sh
# forward.sh: ringest as a relay whose forward destinations send through
# kernel TLS (TX and RX), in the guest (busybox sh).
#
# Needs on PATH: ringest, loadgen, ktls_client (for `metrics`).
# Needs $PKI (default /extra/pki) made by `ktls_client pki` on the host,
# and $OTHER_CA (default /extra/pki-other/ca.pem), a CA that did not sign
# the relay's certificate.
#
#   loadgen --tcp--> relay (ktls = "on")  --TLS 1.2--> final ringest --> file12
#                                         --TLS 1.3--> final ringest --> file13
#
# The relay has one forward destination per TLS version, each fed by its
# own plain TCP source; the final has one TLS source per version (mutual
# auth), each writing its own file. Checks, per version:
# - `loadgen verify`: every message in the final's file exactly once;
# - the relay's ringest_upstream_tls_connections_total{path="ktls"} counts
#   every connection the destination made (so kTLS TX was used), none in
#   userspace;
# - no upstream error.
# One more destination (TLS 1.3, `ktls = "auto"`, which on 6.1 offloads a
# client's TLS 1.3 too: the path must be ktls) meets a final that refuses the
# relay's certificate after the relay's handshake, so the alert arrives
# on the kTLS socket: the relay must log unknown_ca and keep everything;
# the final is then given the right CA (SIGHUP) and every message must
# arrive exactly once (`loadgen verify`).
# Prints "KTLS-FORWARD: PASS|FAIL ..." per version and a summary line;
# exits 1 on any failure.
set -u

PKI=${PKI:-/extra/pki}
OTHER_CA=${OTHER_CA:-/extra/pki-other/ca.pem}
N=${KTLS_FORWARD_MESSAGES:-2000}
WORK=${KTLS_FORWARD_WORK:-/tmp/ktls-forward}
FINAL_STATS=127.0.0.1:9201
RELAY_STATS=127.0.0.1:9202

rm -rf "$WORK"
mkdir -p "$WORK/final" "$WORK/relay"
failures=0
t0=$(cut -d' ' -f1 /proc/uptime)
# The refusing source's client CA: the wrong one until the fix.
cp "$OTHER_CA" "$WORK/final/client-ca-r.pem"

fail() {
    echo "KTLS-FORWARD: FAIL $*"
    failures=$((failures + 1))
}

# ---------------------------------------------------------------- configs
{
    echo "shards = 1"
    echo "drain_timeout_ms = 2000"
    echo "[stats]"
    echo "listen = \"$FINAL_STATS\""
    for v in 12 13; do
        cat <<EOF

[[source]]
name = "from$v"
listen = "127.0.0.1:71$v"
transport = "tls"
destinations = ["file$v"]
[source.tls]
cert_file = "$PKI/server-ecdsa.pem"
key_file = "$PKI/server-ecdsa.key"
ca_file = "$PKI/ca.pem"
peer_verify = "required-trusted"

[[destination]]
name = "file$v"
type = "file"
path = "$WORK/final/messages-$v.log"
fsync = "never"
EOF
    done
    cat <<EOF

[[source]]
name = "from13r"
listen = "127.0.0.1:7114"
transport = "tls"
destinations = ["file13r"]
[source.tls]
cert_file = "$PKI/server-ecdsa.pem"
key_file = "$PKI/server-ecdsa.key"
ca_file = "$WORK/final/client-ca-r.pem"
peer_verify = "required-trusted"
tls_version_min = "1.3"

[[destination]]
name = "file13r"
type = "file"
path = "$WORK/final/messages-13r.log"
fsync = "never"
EOF
} >"$WORK/final/ringest.toml"

{
    echo "shards = 1"
    echo "drain_timeout_ms = 5000"
    echo "[stats]"
    echo "listen = \"$RELAY_STATS\""
    for v in 12 13 13r; do
        port=$v
        mode=on
        # auto, on Linux 6.1: a client offloads TLS 1.3 even so (offload.rs).
        [ "$v" = 13r ] && { port=14; mode=auto; }
        if [ "$v" = 12 ]; then range='tls_version_max = "1.2"'; else range='tls_version_min = "1.3"'; fi
        cat <<EOF

[[source]]
name = "in$v"
listen = "127.0.0.1:72$port"
transport = "tcp"
destinations = ["up$v"]

[[destination]]
name = "up$v"
type = "forward"
servers = ["127.0.0.1:71$port"]
ktls = "$mode"
reconnect_min_ms = 50
reconnect_max_ms = 500
[destination.tls]
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/client.pem"
key_file = "$PKI/client.key"
server_name = "localhost"
$range
EOF
    done
} >"$WORK/relay/ringest.toml"

# ---------------------------------------------------------------- start
# start NAME: ringest serve in $WORK/NAME, its pid in $PID (a child of
# this shell, so `wait` gets its exit status); fails if it is not ready.
start() {
    (cd "$WORK/$1" && RINGEST_LOG=debug exec ringest serve --config ringest.toml \
        >"$WORK/$1/out" 2>"$WORK/$1/err") &
    PID=$!
    for _ in $(seq 1 200); do
        grep -q 'ringest: ready' "$WORK/$1/out" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "KTLS-FORWARD: FAIL $1 ringest did not start:"
    cat "$WORK/$1/err"
    return 1
}

# stop PID NAME: SIGTERM, bounded wait; fails on a hang or a bad exit.
stop() {
    kill -TERM "$1"
    for _ in $(seq 1 150); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        fail "$2 did not exit after SIGTERM"
        kill -KILL "$1"
    fi
    wait "$1"
    rc=$?
    [ "$rc" = 0 ] || fail "$2 exited $rc"
    echo "$2: $(grep -m1 'stopped:' "$WORK/$2/err")"
    if grep -q panicked "$WORK/$2/err"; then
        fail "$2 panicked"
        grep -A5 panicked "$WORK/$2/err"
    fi
}

start final || exit 1
final=$PID
start relay || { kill -TERM "$final"; exit 1; }
relay=$PID
echo "relay: $(grep -m1 'kTLS: ' "$WORK/relay/err")"

lines() {
    if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# ---------------------------------------------------------------- send
for v in 12 13; do
    loadgen send --tcp --target "127.0.0.1:72$v" --count "$N" --connections 2 \
        --size 200 --json --quiet >"$WORK/send-$v.json" 2>"$WORK/send-$v.err" ||
        fail "tls1.${v#1}: loadgen send: $(cat "$WORK/send-$v.err")"
done
# Delivered when the final has every line (30 s at most; TLS 1.3 holds
# messages until confirm_ms passes, 1 s).
for v in 12 13; do
    for _ in $(seq 1 300); do
        [ "$(lines "$WORK/final/messages-$v.log")" -ge "$N" ] && break
        sleep 0.1
    done
done
m=$(ktls_client metrics "$RELAY_STATS")
val() { echo "$m" | grep -F "$1" | awk '{s += $NF} END {print s + 0}'; }

# ---------------------------------------------------------------- refusal
# In the background: the relay takes what its rings hold, then stops
# reading until the final accepts it.
loadgen send --tcp --target 127.0.0.1:7214 --count "$N" --connections 2 \
    --size 200 --json --quiet >"$WORK/send-13r.json" 2>"$WORK/send-13r.err" &
sender=$!
refused=0
for _ in $(seq 1 200); do
    r=$(ktls_client metrics "$RELAY_STATS" | grep -F 'ringest_upstream_errors_total{destination="up13r",reason="unknown_ca"}' | awk '{print $NF}')
    [ "${r:-0}" -ge 2 ] && { refused=$r; break; }
    sleep 0.1
done
early=$(lines "$WORK/final/messages-13r.log")
cp "$PKI/ca.pem" "$WORK/final/client-ca-r.pem"
kill -HUP "$final"
wait "$sender" || fail "tls1.3-refused: loadgen send: $(cat "$WORK/send-13r.err")"
for _ in $(seq 1 300); do
    [ "$(lines "$WORK/final/messages-13r.log")" -ge "$N" ] && break
    sleep 0.1
done
mr=$(ktls_client metrics "$RELAY_STATS")
stop "$relay" relay
stop "$final" final

# ---------------------------------------------------------------- check
for v in 12 13; do
    name="tls1.${v#1}"
    why=""
    ktls=$(val "ringest_upstream_tls_connections_total{destination=\"up$v\",path=\"ktls\"}")
    all=$(val "ringest_upstream_tls_connections_total{destination=\"up$v\"")
    errs=$(echo "$m" | grep -F "ringest_upstream_errors_total{destination=\"up$v\"" | sed 's/.*{//' | tr '\n' ' ')
    [ "$ktls" -ge 1 ] && [ "$ktls" = "$all" ] ||
        why="$why kTLS TX on $ktls of $all connections;"
    [ "$(val "ringest_upstream_errors_total{destination=\"up$v\"")" = 0 ] ||
        why="$why upstream errors [ $errs];"
    report=$(loadgen verify --format raw --expect-json "$WORK/send-$v.json" \
        "$WORK/final/messages-$v.log" 2>&1) || why="$why loadgen verify: $report;"
    got=$(lines "$WORK/final/messages-$v.log")
    summary="$got/$N lines verified, ktls x$ktls of $all connections"
    if [ -z "$why" ]; then
        echo "KTLS-FORWARD: PASS $name: $summary"
    else
        fail "$name: $why -- $summary"
    fi
done

why=""
vr() { echo "$mr" | grep -F "$1" | awk '{s += $NF} END {print s + 0}'; }
[ "$refused" -ge 2 ] || why="$why no unknown_ca alert counted;"
[ "$early" = 0 ] || why="$why $early lines reached the refusing final;"
grep -q 'upstream 127.0.0.1:7114: the server sent alert unknown_ca' "$WORK/relay/err" ||
    why="$why refusal not logged with its reason;"
ktls=$(vr 'ringest_upstream_tls_connections_total{destination="up13r",path="ktls"}')
all=$(vr 'ringest_upstream_tls_connections_total{destination="up13r"')
[ "$ktls" -ge 3 ] && [ "$ktls" = "$all" ] || why="$why kTLS TX on $ktls of $all connections;"
requeued=$(vr 'ringest_requeued_messages_total{destination="up13r"')
report=$(loadgen verify --format raw --expect-json "$WORK/send-13r.json" \
    "$WORK/final/messages-13r.log" 2>&1) || why="$why loadgen verify: $report;"
summary="$(lines "$WORK/final/messages-13r.log")/$N lines verified after $refused unknown_ca alerts, $requeued messages put back, ktls x$ktls of $all connections"
if [ -z "$why" ]; then
    echo "KTLS-FORWARD: PASS tls1.3-refused-then-fixed: $summary"
else
    fail "tls1.3-refused-then-fixed: $why -- $summary"
fi

took=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
echo "KTLS-FORWARD: took ${took}s"
if [ "$failures" -gt 0 ]; then
    for p in relay final; do
        echo "--- $p stderr (last 30 lines)"
        tail -n 30 "$WORK/$p/err"
    done
    echo "KTLS-FORWARD: $failures failure(s)"
    exit 1
fi
echo "KTLS-FORWARD: all cases passed"
