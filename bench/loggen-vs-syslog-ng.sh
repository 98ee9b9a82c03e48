#!/usr/bin/env bash
# Issue 2's benchmark: the same loggen load (TLS, octet-counted, one record per
# message, 300-byte messages, 8 connections) against ringest and syslog-ng in
# one run, one after the other on a quiet machine. Prints msg/s written,
# server CPU-µs per message (utime+stime of the whole server process from
# /proc/PID/stat over the run), peak RSS, and lost = loggen's count - lines.
#
# usage: bench/loggen-vs-syslog-ng.sh [SECONDS=15] [REPEATS=1]
# needs: syslog-ng-core (loggen, syslog-ng), openssl, a release build
#        (cargo build --release -p ringest).
set -euo pipefail
SECS=${1:-15}
REPEATS=${2:-1}
REPO=$(cd "$(dirname "$0")/.." && pwd)
RINGEST="$REPO/target/release/ringest"
[ -x "$RINGEST" ] || { echo "build first: cargo build --release -p ringest" >&2; exit 2; }
command -v loggen >/dev/null && command -v syslog-ng >/dev/null || { echo "install syslog-ng-core (tests/install-deps.sh)" >&2; exit 2; }
W=$(mktemp -d /tmp/ringest-lgcmp.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
HZ=$(getconf CLK_TCK)
PORT=$((20000 + RANDOM % 20000))

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/server.key" \
  -out "$W/server.pem" -days 2 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_quiet() {
  for _ in $(seq 30); do
    local a b; a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local idle=$(( (b[4]-a[4]) )); local tot=0; for i in 1 2 3 4 5 6 7 8; do tot=$((tot + b[i] - a[i])); done
    [ $((idle * 100 / (tot > 0 ? tot : 1))) -ge 90 ] && return 0
  done
  echo "warning: machine never got quiet" >&2
}
wait_stable() { local f=$1 last=-1 n; for _ in $(seq 100); do n=$(wc -l < "$f" 2>/dev/null || echo 0); [ "$n" = "$last" ] && return; last=$n; sleep 0.3; done; }

run_one() { # engine -> prints a result line
  local engine=$1
  local out="$W/$engine.log" pid
  rm -f "$out"
  case $engine in
    ringest)
      cat > "$W/ringest.toml" <<CONF
[[source]]
name = "loggen"
listen = "127.0.0.1:$PORT"
transport = "tls"
framing = "octet-counted"
[source.tls]
cert_file = "$W/server.pem"
key_file = "$W/server.key"
peer_verify = "optional-untrusted"
[[destination]]
name = "out"
type = "file"
path = "$out"
fsync = "never"
CONF
      "$RINGEST" serve --config "$W/ringest.toml" >/dev/null 2>"$W/ringest.err" & pid=$! ;;
    syslog-ng)
      cat > "$W/syslog-ng.conf" <<CONF
@version: 3.38
options { keep-hostname(yes); stats-freq(0); };
source s { syslog(ip(127.0.0.1) port($PORT) transport("tls") max-connections(64) log-iw-size(640000) log-fetch-limit(1000)
  tls(key-file("$W/server.key") cert-file("$W/server.pem") peer-verify(optional-untrusted))); };
destination d { file("$out" template("\$RAWMSG\n")); };
log { source(s); destination(d); flags(flow-control); };
CONF
      syslog-ng -F -e -f "$W/syslog-ng.conf" -R "$W/sng.persist" -p "$W/sng.pid" -c "$W/sng.ctl" >"$W/sng.err" 2>&1 & pid=$! ;;
  esac
  wait_port
  wait_quiet
  local t0; t0=$(cpu_ticks $pid)
  local lg; lg=$(loggen -U -P --size 300 --active-connections 8 --rate 100000000 --interval "$SECS" 127.0.0.1 $PORT 2>&1 | grep '^average rate' || true)
  wait_stable "$out"
  local t1; t1=$(cpu_ticks $pid)
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local sent; sent=$(sed -n 's/.*count=\([0-9]*\).*/\1/p' <<<"$lg")
  local lines; lines=$(wc -l < "$out")
  awk -v e=$engine -v s="${sent:-0}" -v l=$lines -v c=$((t1 - t0)) -v hz=$HZ -v secs=$SECS -v rss=$rss \
    'BEGIN { printf "| %s | %d | %d | %d | %.0f | %.3f | %d |\n", e, s, l, s - l, l / secs, (c / hz) / (l > 0 ? l : 1) * 1e6, rss / 1024 }'
}

echo "loggen -U -P --size 300 --active-connections 8 --rate 100000000 --interval $SECS; $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| engine | loggen sent | lines written | lost | msg/s written | server CPU-µs/msg | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for _ in $(seq "$REPEATS"); do
  run_one ringest
  run_one syslog-ng
done
