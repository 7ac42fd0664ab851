#!/usr/bin/env bash
# Builds target/debian/rebound_VERSION_ARCH.deb: release binary, man pages and shell
# completions generated from the clap definitions, then `cargo deb --no-build`.
# Needs cargo-deb (cargo install cargo-deb --locked). Prints the path of the .deb.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "build-deb.sh: cargo-deb missing: cargo install cargo-deb --locked" >&2; exit 1; }
cargo build --locked --release --bins
bin=target/release/rebound
rm -rf target/man target/completions
"$bin" generate man target/man >/dev/null
gzip -9n target/man/*.1
for shell in bash zsh fish; do "$bin" generate completions "$shell" target/completions >/dev/null; done
cargo deb --no-build --strip 2>&1 | tail -1
