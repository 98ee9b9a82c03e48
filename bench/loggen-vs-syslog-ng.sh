#!/usr/bin/env bash
# Issue 2's benchmark, like for like (issue 11): the same loggen load (TLS,
# octet-counted, one record per message, SIZE-byte messages, 8 connections)
# against ringest and syslog-ng, REPEATS times; in each repeat both engines
# run one right after the other, in a random order, on a quiet machine.
#
# Both write every message whole, as received, plus LF: ringest `format =
# "raw"`; syslog-ng `flags(no-parse)` with `template("${MSG}\n")` (with
# no-parse, ${MSG} is the whole frame). loggen counts the message's trailing
# LF inside the frame; both engines drop it, so a line is SIZE - 1 bytes.
#
# Every line is checked, not just counted: the RFC 5424 header loggen writes,
# its `seq: N, thread: T` (in order per connection: a gap is missing, a step
# back is a duplicate or a reorder), the padding after `stamp: ...`, and the
# length. lost = loggen's count - valid distinct lines.
#
# Prints a Markdown table per run (msg/s written, server CPU-µs per message =
# utime+stime of the whole server process over the run, peak RSS, bytes per
# message), then per repeat ringest/syslog-ng ratios, and their medians with
# min-max. Exit status 1 if any run lost, duplicated or corrupted a message.
#
# usage: bench/loggen-vs-syslog-ng.sh [SECONDS=15] [REPEATS=3] [SIZE=300]
# needs: syslog-ng-core (loggen, syslog-ng), openssl, a release build
#        (cargo build --release -p ringest), or RINGEST=/path/to/ringest.
set -euo pipefail
SECS=${1:-15}
REPEATS=${2:-3}
SIZE=${3:-300}
export LC_ALL=C
REPO=$(cd "$(dirname "$0")/.." && pwd)
RINGEST=${RINGEST:-"$REPO/target/release/ringest"}
[ -x "$RINGEST" ] || { echo "build first: cargo build --release -p ringest (or set RINGEST)" >&2; exit 2; }
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
# The output's size unchanged for 1 s (its line count would reread gigabytes).
wait_stable() {
  local f=$1 last=-1 n
  for _ in $(seq 120); do
    n=$(stat -c %s "$f" 2>/dev/null || echo 0)
    [ "$n" = "$last" ] && return
    last=$n; sleep 1
  done
}

# Checks every line of loggen's output; prints "lines valid missing dup_or_reordered corrupt".
check_output() {
  awk -v want=$((SIZE - 1)) '
    BEGIN { pad = "PADD"; while (length(pad) < 70000) pad = pad pad }
    {
      n++
      ok = length($0) == want && $0 ~ /^<38>1 [^ ]+ [^ ]+ prg[0-9]+ [0-9]+ - - /
      s = index($0, "seq: "); t = index($0, ", thread: "); st = index($0, ", stamp: ")
      if (ok && s > 0 && t == s + 15 && st > 0) {
        seq = substr($0, s + 5, 10) + 0
        th = substr($0, t + 10, 4)
        rest = substr($0, st + 9)
        sp = index(rest, " ")
        p = substr(rest, sp + 1)
        ok = sp > 0 && p == substr(pad, 1, length(p))
      } else ok = 0
      if (!ok) { corrupt++; next }
      valid++
      if (!(th in next_seq)) next_seq[th] = 0
      if (seq == next_seq[th]) next_seq[th]++
      else if (seq > next_seq[th]) { missing += seq - next_seq[th]; next_seq[th] = seq + 1 }
      else dup++
    }
    END { printf "%d %d %d %d %d\n", n, valid - dup, missing, dup, corrupt }' "$1"
}

run_one() { # repeat engine -> appends "repeat engine msgps cpuus" to $W/figures, prints a table row
  local rep=$1 engine=$2
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
# loggen cannot present a client certificate.
peer_verify = "optional-untrusted"
[[destination]]
name = "out"
type = "file"
path = "$out"
format = "raw"
fsync = "never"
CONF
      "$RINGEST" serve --config "$W/ringest.toml" >/dev/null 2>"$W/ringest.err" & pid=$! ;;
    syslog-ng)
      # no-parse: \${MSG} is the whole frame, written as received (like ringest's raw).
      cat > "$W/syslog-ng.conf" <<CONF
@version: 3.38
options { threaded(yes); keep-hostname(yes); chain-hostnames(no); use-dns(no); use-fqdn(no); dns-cache(no); stats-freq(0); mark-freq(0); };
source s { syslog(ip(127.0.0.1) port($PORT) transport("tls") flags(no-parse)
  max-connections(64) log-iw-size(640000) log-fetch-limit(1000)
  tls(key-file("$W/server.key") cert-file("$W/server.pem") peer-verify(optional-untrusted))); };
destination d { file("$out" template("\${MSG}\n")); };
log { source(s); destination(d); flags(flow-control); };
CONF
      syslog-ng -F -e -f "$W/syslog-ng.conf" -R "$W/sng.persist" -p "$W/sng.pid" -c "$W/sng.ctl" >"$W/sng.err" 2>&1 & pid=$! ;;
  esac
  wait_port
  wait_quiet
  local t0; t0=$(cpu_ticks $pid)
  local lg; lg=$(loggen -U -P --size "$SIZE" --active-connections 8 --rate 100000000 --interval "$SECS" 127.0.0.1 $PORT 2>&1 | grep '^average rate' || true)
  wait_stable "$out"
  local t1; t1=$(cpu_ticks $pid)
  local rss; rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  local sent; sent=$(sed -n 's/.*count=\([0-9]*\).*/\1/p' <<<"$lg")
  local bytes; bytes=$(stat -c %s "$out")
  local lines valid missing dup corrupt
  read -r lines valid missing dup corrupt < <(check_output "$out")
  local lost=$(( ${sent:-0} - valid ))
  [ $lost -lt 0 ] && lost=0
  if [ $lost -gt 0 ] || [ $dup -gt 0 ] || [ $corrupt -gt 0 ]; then BAD=1; fi
  awk -v rep=$rep -v e=$engine -v s="${sent:-0}" -v l=$lines -v v=$valid -v lost=$lost -v m=$missing -v d=$dup -v k=$corrupt \
      -v b=$bytes -v c=$((t1 - t0)) -v hz=$HZ -v secs=$SECS -v rss=$rss -v fig="$W/figures" '
    BEGIN {
      msgps = v / secs; cpu = (c / hz) / (v > 0 ? v : 1) * 1e6
      printf "| %d | %s | %d | %d | %d | %d (%d in gaps) | %d | %d | %.1f | %.0f | %.3f | %d |\n",
        rep, e, s, l, v, lost, m, d, k, (l > 0 ? b / l : 0), msgps, cpu, rss / 1024
      printf "%d %s %f %f\n", rep, e, msgps, cpu >> fig
    }'
}

BAD=0
: > "$W/figures"
echo "loggen -U -P --size $SIZE --active-connections 8 --rate 100000000 --interval $SECS; $REPEATS repeats, engines in a random order per repeat; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); AES-128-GCM $(openssl speed -evp aes-128-gcm -bytes 16384 -seconds 2 2>/dev/null | awk '/^AES-128-GCM/ {sub(/k$/, "", $2); printf "%.2f GB/s", $2 / 1e6}'). Memory state: not prepared by this script (MemFree $(awk '/MemFree/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) at the start; \`bench compare\` measures the steady state). Absolute figures hold for this machine only."
echo
echo "| repeat | engine | loggen sent | lines | valid distinct | lost | dup or reordered | corrupt | bytes/line | msg/s written | server CPU-µs/msg | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for rep in $(seq "$REPEATS"); do
  if (( RANDOM % 2 )); then order="ringest syslog-ng"; else order="syslog-ng ringest"; fi
  for engine in $order; do run_one "$rep" "$engine"; done
done
echo
echo "Paired by repeat (ringest / syslog-ng in the same repeat), median (min–max):"
awk '
  { if ($2 == "ringest") { rm[$1] = $3; rc[$1] = $4 } else { sm[$1] = $3; sc[$1] = $4 } }
  function med(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return sprintf("%.3f (%.3f–%.3f)", (n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2), a[1], a[n])
  }
  END {
    n = 0
    for (r in rm) if ((r in sm) && sm[r] > 0 && sc[r] > 0) { n++; m[n] = rm[r] / sm[r]; c[n] = rc[r] / sc[r] }
    if (n == 0) { print "- no complete pair"; exit }
    printf "- msg/s written: %s×\n", med(m, n)
    printf "- server CPU-µs per message: %s×\n", med(c, n)
  }' "$W/figures"
exit $BAD
