#!/usr/bin/env bash
# CI step: build the .deb (installing cargo-deb if missing, ~3.5 min of compiling),
# install it with dpkg, and check the installed binary and units.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
deb=$(bash packaging/build-deb.sh | tail -1)
[ -f "$deb" ] || { echo "deb.sh: no .deb built ($deb)" >&2; exit 1; }
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{ print $6 }'
dpkg -i "$deb"
rebound --version
test -f /etc/rebound/rebound.toml
man -w rebound >/dev/null 2>&1 || test -f /usr/share/man/man1/rebound.1.gz
if command -v systemd-analyze >/dev/null; then
    units=$(dpkg -L rebound | grep -E '/systemd/system/rebound\.(socket|service)$')
    # shellcheck disable=SC2086
    out=$(systemd-analyze verify $units 2>&1) || { echo "$out" >&2; exit 1; }
    [ -z "$out" ] || { echo "systemd-analyze verify: $out" >&2; exit 1; }
    echo "systemd-analyze verify: clean ($(echo $units))"
fi
echo "deb.sh: $deb installed and verified in $(( $(date +%s) - start ))s"
