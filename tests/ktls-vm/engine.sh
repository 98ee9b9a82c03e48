#!/bin/sh
# engine.sh: the real `ringest` with kTLS offload, in the guest (busybox sh).
#
# Needs on PATH: ringest, ktls_client (engine/examples/ktls_client.rs).
# Needs $PKI (default /extra/pki) made by `ktls_client pki` on the host
# (RSA keys are slow under TCG).
#
# One ringest, one source per case (its own port and stats labels), one
# output file; cases run one after the other, each checked on its own:
# - exactly the expected new lines in the output file, none twice;
# - ringest_tls_connections_total{path=...} for the case's source;
# - the control records / close reasons the case must produce.
# Prints "KTLS-ENGINE: PASS|FAIL case: ..." per case; exits 1 on any failure.
set -u

PKI=${PKI:-/extra/pki}
N=${KTLS_ENGINE_MESSAGES:-2000}
CONNS=${KTLS_ENGINE_CONNECTIONS:-4}
WORK=${KTLS_ENGINE_WORK:-/tmp/ktls-engine}
STATS=127.0.0.1:9100
BASE_PORT=7000

rm -rf "$WORK"
mkdir -p "$WORK/out"
failures=0
# Lines every case expects in its file, summed: ringest's exit line must agree.
expected_total=0

fail() {
    echo "KTLS-ENGINE: FAIL $*"
    failures=$((failures + 1))
}

# name|suite|server key|ktls|twist|expected path label
CASES="
tls13-aes128gcm|TLS13_AES_128_GCM_SHA256|ecdsa|on|none|ktls
tls13-aes256gcm|TLS13_AES_256_GCM_SHA384|ecdsa|on|none|ktls
tls13-chacha20|TLS13_CHACHA20_POLY1305_SHA256|ecdsa|on|none|ktls
tls12-ecdhe-ecdsa-aes128gcm|TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256|ecdsa|auto|none|ktls
tls12-ecdhe-ecdsa-aes256gcm|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|ecdsa|auto|none|ktls
tls12-ecdhe-ecdsa-chacha20|TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256|ecdsa|auto|none|ktls
tls12-ecdhe-rsa-aes128gcm|TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256|rsa|auto|none|ktls
tls12-ecdhe-rsa-aes256gcm|TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384|rsa|auto|none|ktls
tls12-ecdhe-rsa-chacha20|TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256|rsa|auto|none|ktls
tls12-close-notify-mid-stream|TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256|rsa|auto|close-notify|ktls
tls13-close-notify-mid-stream|TLS13_AES_128_GCM_SHA256|ecdsa|on|close-notify|ktls
tls13-keyupdate-auto|TLS13_AES_128_GCM_SHA256|ecdsa|auto|key-update|userspace_tls13_rekey_unsupported
tls13-keyupdate-on|TLS13_AES_256_GCM_SHA384|ecdsa|on|key-update|ktls
tls12-garbage|TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384|ecdsa|auto|garbage|ktls
tls13-garbage|TLS13_CHACHA20_POLY1305_SHA256|ecdsa|on|garbage|ktls
"

# ---------------------------------------------------------------- config
OUT="$WORK/out/messages.log"
{
    echo "shards = 2"
    echo "drain_timeout_ms = 2000"
    echo
    echo "[stats]"
    echo "listen = \"$STATS\""
    echo
    echo "[[destination]]"
    echo "name = \"messages\""
    echo "type = \"file\""
    echo "path = \"$OUT\""
    echo "fsync = \"never\""
} >"$WORK/ringest.toml"
i=0
for line in $CASES; do
    IFS='|' read -r name suite key ktls twist path <<EOF
$line
EOF
    i=$((i + 1))
    cat >>"$WORK/ringest.toml" <<EOF

[[source]]
name = "$name"
listen = "127.0.0.1:$((BASE_PORT + i))"
transport = "tls"
framing = "octet-counted"
ktls = "$ktls"
[source.tls]
cert_file = "$PKI/server-$key.pem"
key_file = "$PKI/server-$key.key"
ca_file = "$PKI/ca.pem"
peer_verify = "required-trusted"
EOF
done

# ---------------------------------------------------------------- start
RINGEST_LOG=debug ringest serve --config "$WORK/ringest.toml" \
    >"$WORK/ringest.out" 2>"$WORK/ringest.err" &
pid=$!
ready=0
for _ in $(seq 1 200); do
    if grep -q 'ringest: ready' "$WORK/ringest.out" 2>/dev/null; then
        ready=1
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "KTLS-ENGINE: FAIL ringest did not start:"
    cat "$WORK/ringest.err"
    exit 1
fi
probe=$(grep -m1 'kTLS: ' "$WORK/ringest.err")
echo "ringest: $probe"
case "$probe" in
*"kTLS: tls1.2 [aes128gcm aes256gcm chacha20], tls1.3 [aes128gcm aes256gcm chacha20]"*) ;;
*) fail "probe: expected every cipher for both versions: $probe" ;;
esac

# The sum of every sample whose name and labels start with $1.
metric() {
    ktls_client metrics "$STATS" | grep -F "$1" | awk '{s += $NF} END {print s + 0}'
}

# Lines in the output file so far.
lines() {
    if [ -f "$OUT" ]; then wc -l <"$OUT"; else echo 0; fi
}

# Polls until the output file has $1 lines (10 s at most), then waits a
# little more so that lines past it would show too; prints the count.
lines_settled() {
    for _ in $(seq 1 100); do
        [ "$(lines)" -ge "$1" ] && break
        sleep 0.1
    done
    sleep 0.3
    lines
}

# ---------------------------------------------------------------- cases
i=0
for line in $CASES; do
    IFS='|' read -r name suite key ktls twist path <<EOF
$line
EOF
    i=$((i + 1))
    port=$((BASE_PORT + i))
    started=$(cut -d' ' -f1 /proc/uptime)
    prev=$(lines)
    at=$((N / CONNS / 2))
    out=$(ktls_client send --target "127.0.0.1:$port" --ca "$PKI/ca.pem" \
        --cert "$PKI/client.pem" --key "$PKI/client.key" --suite "$suite" \
        --connections "$CONNS" --count "$N" --twist "$twist" --twist-at "$at" \
        --records-per-write 37 2>&1)
    rc=$?
    if [ "$rc" != 0 ]; then
        fail "$name: client: $out"
        continue
    fi
    sent=$(echo "$out" | sed -n 's/^sent \([0-9]*\) before_twist \([0-9]*\) .*/\1/p')
    before=$(echo "$out" | sed -n 's/^sent \([0-9]*\) before_twist \([0-9]*\) .*/\2/p')
    # What must arrive: everything, except after a twist the server is
    # entitled (or obliged) to close on.
    case "$twist" in
    none) want=$N ;;
    close-notify | garbage) want=$before ;;
    key-update) if [ "$path" = ktls ]; then want=$before; else want=$sent; fi ;;
    esac
    now=$(lines_settled $((prev + want)))
    got=$((now - prev))
    uniq=$(tail -n +$((prev + 1)) "$OUT" | sort -u | wc -l)
    why=""
    [ "$got" = "$want" ] || why="$why lines $got, want $want (sent $sent, before twist $before);"
    [ "$uniq" = "$got" ] || why="$why $((got - uniq)) duplicate lines;"
    m=$(ktls_client metrics "$STATS")
    val() { echo "$m" | grep -F "$1" | awk '{s += $NF} END {print s + 0}'; }
    conns=$(val "ringest_tls_connections_total{source=\"$name\",path=\"$path\"}")
    all=$(val "ringest_tls_connections_total{source=\"$name\"")
    [ "$conns" = "$CONNS" ] && [ "$all" = "$CONNS" ] ||
        why="$why path $path: $conns of $all connections, want $CONNS;"
    ctl=$(echo "$m" | grep -F "ringest_ktls_control_records_total{source=\"$name\"" | sed 's/.*type="\([a-z_]*\)"} /\1=/' | tr '\n' ' ')
    errs=$(echo "$m" | grep -F "ringest_connection_errors_total{source=\"$name\"" | sed 's/.*reason="\([a-z_]*\)"} /\1=/' | tr '\n' ' ')
    need_metric() { # LABELLED-SAMPLE WANT
        v=$(val "$1")
        [ "$v" = "$2" ] || why="$why $1 = $v, want $2;"
    }
    case "$twist" in
    none | close-notify)
        # Every connection ends on the client's close_notify, read by recvmsg.
        [ "$path" = ktls ] &&
            need_metric "ringest_ktls_control_records_total{source=\"$name\",type=\"close_notify\"}" "$CONNS"
        need_metric "ringest_connection_errors_total{source=\"$name\"" 0
        ;;
    key-update)
        if [ "$path" = ktls ]; then
            need_metric "ringest_ktls_control_records_total{source=\"$name\",type=\"key_update\"}" "$CONNS"
            need_metric "ringest_connection_errors_total{source=\"$name\",reason=\"ktls_key_update_unfollowable\"}" "$CONNS"
            grep -q 'cannot follow it' "$WORK/ringest.err" || why="$why no KeyUpdate close reason logged;"
        else
            need_metric "ringest_connection_errors_total{source=\"$name\"" 0
        fi
        ;;
    garbage)
        need_metric "ringest_connection_errors_total{source=\"$name\",reason=\"ktls_not_a_record\"}" "$CONNS"
        grep -q 'not a TLS record' "$WORK/ringest.err" || why="$why no garbage close reason logged;"
        ;;
    esac
    expected_total=$((expected_total + want))
    took=$(awk -v a="$started" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
    summary="$got/$want lines, path $path x$conns, control [ $ctl], errors [ $errs] (${took}s)"
    if [ -z "$why" ]; then
        echo "KTLS-ENGINE: PASS $name: $summary"
    else
        fail "$name: $why -- $summary"
    fi
done

# ---------------------------------------------------------------- stop
echo "--- close reasons ringest logged"
grep -E 'WARN ' "$WORK/ringest.err" | sed 's/^WARN  127.0.0.1:[0-9]* /  /' | sort | uniq -c | head -20
echo "--- per-connection data paths (debug log)"
grep -oE 'data path: [a-zA-Z ]+(\([a-z0-9_]+\))?' "$WORK/ringest.err" | sort | uniq -c
kill -TERM "$pid"
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    fail "ringest did not exit after SIGTERM"
    kill -KILL "$pid"
fi
wait "$pid"
rc=$?
stopped=$(grep -m1 'stopped:' "$WORK/ringest.err")
echo "ringest exit $rc: $stopped"
case "$stopped" in
*"stopped: $expected_total messages received, $expected_total written"*) ;;
*) fail "exit line: want $expected_total received and written: $stopped" ;;
esac
[ "$rc" = 0 ] || fail "ringest exited $rc"
if grep -q 'panicked' "$WORK/ringest.err"; then
    fail "ringest panicked"
    grep -A5 panicked "$WORK/ringest.err"
fi

if [ "$failures" -gt 0 ]; then
    echo "--- ringest stderr (last 40 lines)"
    tail -n 40 "$WORK/ringest.err"
    echo "KTLS-ENGINE: $failures failure(s)"
    exit 1
fi
echo "KTLS-ENGINE: all cases passed"
