#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (run as root):
# openssl and syslog-ng-core (loggen, and syslog-ng as a TLS peer), curl,
# the rsyslog peers (unpacked, since they conflict with syslog-ng-core),
# the peers' Kafka destinations for bench's kafka rows (syslog-ng-mod-rdkafka
# installed, rsyslog-kafka unpacked: both in tests/interop/setup-peers.sh),
# the qemu guest kernel for the kTLS test, e2fsprogs (mkfs.ext4 for
# tests/direct_io.rs's loop image), the Apache Kafka broker's jars
# (tests/kafka) and what the bundled librdkafka build needs; for the fuzz and Miri steps
# of tests/run-all.sh, a nightly toolchain with miri and cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
export KTLS_VM_CACHE="${KTLS_VM_CACHE:-$PWD/target/ktls-vm}"
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in openssl syslog-ng-core curl qemu-system-x86 busybox-static logrotate python3-seccomp systemd e2fsprogs \
  cmake libcurl4-openssl-dev libssl-dev pkg-config maven; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# The Kafka broker of tests/kafka needs a JRE (>= 17); any installed one does.
command -v java >/dev/null || need+=(default-jre-headless)
if ((${#need[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# syslog-ng-core's postinst may start a system syslog-ng; tests start their own.
bash tests/interop/setup-peers.sh
bash tests/ktls-vm/prepare.sh "$KTLS_VM_CACHE"
# Apache Kafka 4.x jars from Maven Central into target/kafka/libs (the
# broker the kafka tests start; rdkafka's bundled build needs cmake and
# libcurl4-openssl-dev's header, installed above).
bash tests/kafka/broker.sh fetch
# The package test builds the .deb with cargo-deb (crates.io).
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version 3.8.0
# Fuzzing (cargo-fuzz needs nightly) and Miri. Any failure here stops CI:
# run-all.sh must never skip these steps for want of a tool.
nightly="${RINGEST_NIGHTLY:-nightly}"
if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$nightly" --profile minimal --component miri,rust-src
fi
installed=$(rustup +"$nightly" component list --installed)
for component in miri rust-src; do
  grep -q "^$component" <<<"$installed" || rustup +"$nightly" component add "$component"
done
cargo +"$nightly" miri setup >/dev/null
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
echo "install-deps: done"
