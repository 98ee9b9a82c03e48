#!/usr/bin/env bash
# loadgen benchmark, bounded: four runs of SECONDS (default 10, at most 15)
# each plus a 5 s handshake run, about 50 s of load in all, on loopback only.
#
#   (a)  loadgen --threads 1, 8 connections, TLS 1.3 AES-128-GCM, mutual auth,
#        300-byte messages, 50 per record, into `loadgen sink --ca`
#   (b)  loadgen, one TLS record per message (records coalesced into large
#        writes), into `loadgen sink` without client auth
#   (b2) loadgen, one TLS record *and one write()* per message, Nagle on:
#        loggen's syscall pattern
#   (c)  loggen -U -P --size 300 --active-connections 8 into the same sink
#   (d)  loadgen --handshake-only: full TLS 1.3 handshakes (ECDSA P-256,
#        X25519) per second into `loadgen sink --ca`, 8 slots, 1 thread
#
# loggen cannot present a client certificate, so (b), (b2) and (c) use a sink
# without --ca; all sinks accept only TLS13_AES_128_GCM_SHA256, so loggen
# (OpenSSL) negotiates the same cipher as loadgen.
#
# Usage: loadgen/bench.sh [SECONDS]
# Needs: cargo, openssl, python3, loggen (apt-get install syslog-ng-core).
set -euo pipefail

SECS=${1:-10}
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || (( SECS < 1 || SECS > 15 )); then
    echo "bench.sh: SECONDS must be 1..15" >&2
    exit 2
fi
for tool in cargo openssl python3; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool is required" >&2; exit 2; }
done
HAVE_LOGGEN=1
command -v loggen >/dev/null || { HAVE_LOGGEN=0; echo "bench.sh: loggen not found (apt-get install -y syslog-ng-core); skipping (c)" >&2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -p loadgen --manifest-path "$ROOT/Cargo.toml" >&2
LG=$CARGO_TARGET_DIR/release/loadgen

WORK=$(mktemp -d)
SINK_PID=""
cleanup() {
    if [[ -n "$SINK_PID" ]] && kill -0 "$SINK_PID" 2>/dev/null; then
        kill -TERM "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- PKI: CA, server cert for localhost/127.0.0.1, client cert -------------
pki() {
    local d=$WORK
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$d/server.ext"
    printf 'extendedKeyUsage=clientAuth\n' > "$d/client.ext"
    for who in server client; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$d/$who.key" -out "$d/$who.csr" -subj "/CN=$who" 2>/dev/null
        openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
            -CAcreateserial -out "$d/$who.pem" -days 2 -extfile "$d/$who.ext" 2>/dev/null
    done
}
pki

CIPHER=TLS13_AES_128_GCM_SHA256

# start_sink [extra sink args...]: starts a sink, sets SINK_PID and SINK_ADDR.
start_sink() {
    "$LG" sink --listen 127.0.0.1:0 --cert "$WORK/server.pem" --key "$WORK/server.key" \
        --cipher "$CIPHER" --tls-version 1.3 --duration 120s "$@" \
        > "$WORK/sink.out" 2> "$WORK/sink.err" &
    SINK_PID=$!
    SINK_ADDR=""
    for _ in $(seq 200); do
        SINK_ADDR=$(head -1 "$WORK/sink.out" | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
        [[ -n "$SINK_ADDR" ]] && break
        sleep 0.05
    done
    if [[ -z "$SINK_ADDR" ]]; then
        echo "bench.sh: the sink did not start:" >&2
        cat "$WORK/sink.err" >&2
        exit 1
    fi
}

# stop_sink: SIGTERM the sink we started; prints its summary line.
stop_sink() {
    kill -TERM "$SINK_PID"
    wait "$SINK_PID" || true
    SINK_PID=""
    tail -1 "$WORK/sink.out"
}

# send NAME [send args...]: runs loadgen send, saves its JSON as NAME.json.
send() {
    local name=$1; shift
    timeout $((SECS + 30)) "$LG" send --target "$SINK_ADDR" --threads 1 --connections 8 \
        --size 300 --duration "${SECS}s" --cipher "$CIPHER" --tls-version 1.3 --quiet --json \
        "$@" > "$WORK/$name.json" 2> "$WORK/$name.err" || {
        echo "bench.sh: send $name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
}

echo "bench.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), kernel $(uname -r); load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

head -1 /proc/stat > "$WORK/stat.start"
start_sink --ca "$WORK/ca.pem"
send a --records-per-write 50 --ca "$WORK/ca.pem" --sni localhost \
    --cert "$WORK/client.pem" --key "$WORK/client.key"
stop_sink > "$WORK/a.sink"

start_sink
send b --records-per-write 1
stop_sink > "$WORK/b.sink"

start_sink
send b2 --records-per-write 1 --write-bytes 1 --nagle
stop_sink > "$WORK/b2.sink"

start_sink --ca "$WORK/ca.pem"
SECS_SAVED=$SECS; SECS=5
send d --handshake-only --ca "$WORK/ca.pem" --sni localhost \
    --cert "$WORK/client.pem" --key "$WORK/client.key"
SECS=$SECS_SAVED
stop_sink > "$WORK/d.sink"

if (( HAVE_LOGGEN )); then
    start_sink
    port=${SINK_ADDR##*:}
    # loggen's --rate is per connection; its final line goes to stderr.
    /usr/bin/env time -f 'CPU %U %S' -o "$WORK/c.time" \
        timeout $((SECS + 30)) loggen -U -P --size 300 --active-connections 8 \
        --rate 100000000 --interval "$SECS" 127.0.0.1 "$port" > "$WORK/c.out" 2>&1 || true
    stop_sink > "$WORK/c.sink"
fi

head -1 /proc/stat > "$WORK/stat.end"

python3 - "$WORK" "$HAVE_LOGGEN" <<'EOF'
import json, re, sys
work, have_loggen = sys.argv[1], sys.argv[2] == "1"
def load(p):
    with open(p) as f:
        return json.loads(f.read().strip().splitlines()[-1])
rows = []
for key, label in [
    ("a", "(a) loadgen 1 thread, mutual TLS, 50 msgs/record"),
    ("b", "(b) loadgen 1 thread, 1 msg/record, coalesced writes"),
    ("b2", "(b2) loadgen 1 thread, 1 msg/record, 1 write/record"),
]:
    s, k = load(f"{work}/{key}.json"), load(f"{work}/{key}.sink")
    errs = sum(s["errors"].values())
    rows.append((label, s["sent"], s["msg_per_s"], s["client_cpu_s"], k["messages"], k["cpu_s"], errs))
if have_loggen:
    out = open(f"{work}/c.out").read()
    m = re.findall(r"average rate = [\d.]+ msg/sec, count=(\d+), time=([\d.]+)", out)
    t = open(f"{work}/c.time").read()
    cpu = re.search(r"CPU ([\d.]+) ([\d.]+)", t)
    k = load(f"{work}/c.sink")
    if m and cpu:
        count, secs = int(m[-1][0]), float(m[-1][1])
        rows.append(("(c) loggen -U -P, 8 connections", count, count / secs,
                     float(cpu.group(1)) + float(cpu.group(2)), k["messages"], k["cpu_s"],
                     sum(k["errors"].values())))
    else:
        print("loggen output not understood:\n" + out[-500:])
print()
print(f"{'case':<55} {'sent':>10} {'msg/s':>10} {'client CPU-s':>12} {'CPU-us/msg':>10} {'msg/CPU-s':>10} {'sink msgs':>10} {'sink CPU-us/msg':>15}")
for label, sent, rate, cpu, sink_msgs, sink_cpu, errs in rows:
    per_cpu = sent / cpu if cpu else 0
    print(f"{label:<55} {sent:>10} {rate:>10.0f} {cpu:>12.2f} {cpu*1e6/max(sent,1):>10.3f} {per_cpu:>10.0f} {sink_msgs:>10} {sink_cpu*1e6/max(sink_msgs,1):>15.3f}"
          + (f"  ERRORS={errs}" if errs else ""))
if have_loggen and len(rows) == 4:
    per = lambda r: r[1] / r[3]
    print()
    print(f"msg per client CPU-second, loadgen (b) / loggen (c): {per(rows[1]) / per(rows[3]):.1f}x")
    print(f"msg per client CPU-second, loadgen (b2) / loggen (c): {per(rows[2]) / per(rows[3]):.1f}x")
    print("note: loggen counts messages it wrote; it closes with a reset, so the sink may count fewer.")
d, k = load(f"{work}/d.json"), load(f"{work}/d.sink")
print()
print(f"(d) full TLS 1.3 handshakes, mutual auth, 8 slots, 1 thread: {d['handshakes_per_s']:.0f}/s "
      f"({d['handshakes']} in {d['elapsed_s']:.1f}s; client CPU {d['client_cpu_s']:.2f}s, sink CPU {k['cpu_s']:.2f}s, "
      f"sink handshakes {k['handshakes']}, errors {sum(d['errors'].values())})")
# CPU time the hypervisor took from this VM during the runs, and idle time:
# both make the figures noisier, so they are printed with them.
a = [int(x) for x in open(f"{work}/stat.start").read().split()[1:]]
b = [int(x) for x in open(f"{work}/stat.end").read().split()[1:]]
d = [y - x for x, y in zip(a, b)]
total = sum(d[:8]) or 1
print(f"\nduring the runs: idle {100 * (d[3] + d[4]) / total:.1f}%, steal {100 * d[7] / total:.1f}% of the machine's CPU time")
EOF
