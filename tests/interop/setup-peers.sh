#!/usr/bin/env bash
# Installs the real syslog peers that tests/interop.rs drives as TLS clients
# (run as root on Debian 12; idempotent, safe to call on every CI run):
#   - syslog-ng-core (syslog-ng 3.38 + loggen), syslog-ng-mod-rdkafka (its
#     kafka-c destination, for bench's kafka rows) and openssl, via apt-get;
#   - rsyslog + rsyslog-gnutls + rsyslog-openssl + rsyslog-kafka (omkafka,
#     for bench's kafka rows), NOT installed (they conflict
#     with syslog-ng-core as system-log-daemon) but fetched with
#     `apt-get download` and unpacked with `dpkg -x` into one tree, plus the
#     runtime libraries rsyslogd links against.
# The unpacked tree goes to $RINGEST_PEERS_DIR/rsyslog (default:
# <workspace>/target/peers/rsyslog); the last lines printed say where.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
PEERS_DIR="${RINGEST_PEERS_DIR:-$PWD/target/peers}"
RSYSLOG_DIR="$PEERS_DIR/rsyslog"
mkdir -p "$PEERS_DIR"

updated=0
apt_update_once() {
  if [ "$updated" = 0 ]; then
    apt-get update -qq
    updated=1
  fi
}

# 1. Installed packages: syslog-ng, loggen, openssl (rehash, fingerprints),
#    and the shared libraries of rsyslogd and its TLS drivers.
need=()
for pkg in syslog-ng-core syslog-ng-mod-rdkafka librdkafka1 openssl libestr0 libfastjson4 liblognorm5 libsystemd0 \
           libuuid1 libzstd1 zlib1g libgnutls30 libssl3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  apt_update_once
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# syslog-ng-core's postinst may start a system syslog-ng; the tests run their
# own instances with their own files and do not care about it.

# 2. rsyslog, unpacked. Re-done only when the candidate version changes.
stamp="$RSYSLOG_DIR/.unpacked"
want_version="$(apt-cache policy rsyslog 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [ -z "$want_version" ] || [ "$want_version" = "(none)" ]; then
  apt_update_once
  want_version="$(apt-cache policy rsyslog | awk '/Candidate:/ {print $2}')"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_version" ] \
   || [ ! -x "$RSYSLOG_DIR/usr/sbin/rsyslogd" ] \
   || [ -z "$(find "$RSYSLOG_DIR" -name omkafka.so -print -quit)" ]; then
  debs="$PEERS_DIR/debs"
  rm -rf "$debs" "$RSYSLOG_DIR"
  mkdir -p "$debs" "$RSYSLOG_DIR"
  # apt-get download writes into the current folder; the _apt user must be
  # able to write there, hence the chmod.
  chmod 0777 "$debs"
  if ! (cd "$debs" && apt-get download -qq rsyslog rsyslog-gnutls rsyslog-openssl rsyslog-kafka); then
    apt_update_once
    (cd "$debs" && apt-get download -qq rsyslog rsyslog-gnutls rsyslog-openssl rsyslog-kafka)
  fi
  for deb in "$debs"/*.deb; do
    dpkg -x "$deb" "$RSYSLOG_DIR"
  done
  echo "$want_version" >"$stamp"
fi

moddir="$(dirname "$(find "$RSYSLOG_DIR" -name lmnsd_gtls.so -print -quit)")"
for f in "$RSYSLOG_DIR/usr/sbin/rsyslogd" "$moddir/lmnsd_gtls.so" "$moddir/lmnsd_ossl.so" \
         "$moddir/imtcp.so" "$moddir/omkafka.so"; do
  [ -e "$f" ] || { echo "setup-peers: missing $f after unpacking" >&2; exit 1; }
done
if ldd "$RSYSLOG_DIR/usr/sbin/rsyslogd" "$moddir"/lmnsd_*.so "$moddir/omkafka.so" | grep -q "not found"; then
  echo "setup-peers: unresolved libraries:" >&2
  ldd "$RSYSLOG_DIR/usr/sbin/rsyslogd" "$moddir"/lmnsd_*.so "$moddir/omkafka.so" | grep "not found" >&2
  exit 1
fi

echo "setup-peers: syslog-ng $(syslog-ng --version | awk 'NR==1 {print $3}' | tr -d '()') at $(command -v syslog-ng), loggen at $(command -v loggen)"
echo "setup-peers: rsyslog $(cat "$stamp") unpacked in $RSYSLOG_DIR"
echo "setup-peers: rsyslogd=$RSYSLOG_DIR/usr/sbin/rsyslogd modules=$moddir"
