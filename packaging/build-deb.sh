#!/usr/bin/env bash
# Builds the Debian package: a release build of the workspace's binaries,
# the man pages from the CLI definitions (`ringest man`, hidden), then
# cargo-deb without building again. Prints the .deb's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
    echo "build-deb: cargo-deb is missing: cargo install cargo-deb --locked" >&2
    exit 1
}
cargo build --release --workspace --bins --features ringest/kafka
target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
man="$target/release/man"
rm -rf "$man"
"$target/release/ringest" man --dir "$man"
gzip -9n "$man"/*.1
cargo deb -p ringest --no-build --strip --output "$target/debian/" >&2
ls -t "$target"/debian/ringest_*.deb | head -1
