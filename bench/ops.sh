#!/usr/bin/env bash
# Operator-command figures: `export suppressions` of N suppressed addresses (default 1
# million) in each format, and `ingest` throughput on an mbox made of the Sisimai corpus
# repeated (each copy made unique by an X-Bench-Copy header, so none is a duplicate),
# then the same mbox again (all duplicates); the same for the corpus directory itself.
# Prints wall and CPU seconds, messages per second and CPU microseconds per message of
# each; with -r RUNS the mbox is ingested RUNS times into a new store each time, and the
# best and median rates are printed (the machine is shared: one run says little).
#
# Usage: bench/ops.sh [-n ADDRESSES] [-c CORPUS_COPIES] [-j JOBS] [-r RUNS] [BINARY]
#   BINARY defaults to target/release/rebound (build it first: cargo build --release)
# Needs python3 and ../shared/corpus/sisimai.
set -euo pipefail
cd "$(dirname "$0")/.."
N=1000000 COPIES=130 JOBS="" RUNS=1
while getopts "n:c:j:r:h" o; do
    case $o in n) N=$OPTARG ;; c) COPIES=$OPTARG ;; j) JOBS="--jobs $OPTARG" ;; r) RUNS=$OPTARG ;; *) sed -n '2,11p' "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1))
BIN=$(realpath "${1:-target/release/rebound}")
CORPUS=$(realpath -m ../shared/corpus/sisimai)
[ -x "$BIN" ] || { echo "ops.sh: $BIN not built (cargo build --release)" >&2; exit 1; }
[ -d "$CORPUS" ] || { echo "ops.sh: $CORPUS missing (../shared beside the repo)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A store with N suppressed addresses (created and migrated by an empty ingest).
mkdir "$WORK/empty"
cd "$WORK"   # rebound may create files beside it (a VERP key)
"$BIN" --db "$WORK/s.db" ingest -q "$WORK/empty" >/dev/null 2>>"$WORK/err"
python3 - "$WORK/s.db" "$N" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
  INSERT INTO address_status (address, domain, state, reason, class, since, first_event_at, last_event_at, updated_at)
  SELECT printf('user%08d@d%03d.example', (i * 7919) % 100000000, i % 997), printf('d%03d.example', i % 997),
    CASE WHEN i % 50 = 0 THEN 'complained' ELSE 'suppressed' END, 'userunknown', 'invalid_recipient',
    1790000000 + i, 1790000000, 1790000000, 1790000000 FROM n""", (int(sys.argv[2]),))
c.commit()
PY
echo "export suppressions, $N addresses:"
TIMEFORMAT='%R %U %S'
for f in txt postfix csv json; do
    t=$( { time "$BIN" --db "$WORK/s.db" export suppressions --format "$f" --output "$WORK/list.$f" 2>>"$WORK/err"; } 2>&1 )
    read -r wall user sys <<<"$t"
    printf '  %-8s %6ss wall, %5.2fs cpu  %s lines, %s bytes\n' "$f" "$wall" "$(python3 -c "print($user + $sys)")" \
        "$(wc -l <"$WORK/list.$f")" "$(stat -c %s "$WORK/list.$f")"
done
rm -f "$WORK"/list.*

# An mbox of the corpus repeated COPIES times.
python3 - "$CORPUS" "$WORK/bench.mbox" "$COPIES" <<'PY'
import os, re, sys
corpus, out, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
msgs = []
for name in sorted(os.listdir(corpus)):
    if not name.endswith(".eml"):
        continue
    data = open(os.path.join(corpus, name), "rb").read()
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    msgs.append(data)
with open(out, "wb") as f:
    for k in range(copies):
        for m in msgs:
            f.write(b"From bench@example.org Mon Nov 23 10:00:00 2026\nX-Bench-Copy: %d\n" % k)
            f.write(m if m.endswith(b"\n") else m + b"\n")
PY
size=$(stat -c %s "$WORK/bench.mbox")
# One ingest run: the summary's messages and stored counts, its own rate, and the
# process's wall and CPU seconds (what the issue's bar is measured on).
ingest_run() {  # LABEL DB INPUT
    local t wall user sys out msgs
    t=$( { time "$BIN" --db "$2" ingest -q $JOBS "$3" >"$WORK/out" 2>>"$WORK/err"; } 2>&1 )
    read -r wall user sys <<<"$t"
    out=$(cat "$WORK/out")
    msgs=$(awk '/^messages/ {print $2}' <<<"$out")
    printf '  %-6s %6s messages, %6s stored | %6.3fs wall (%6.0f/s) | %6.3fs cpu (%6.0f per cpu-second, %5.1f us/msg)\n' "$1" \
        "$msgs" "$(awk '/^stored/ {print $2}' <<<"$out")" "$wall" "$(python3 -c "print($msgs / max($wall, 1e-9))")" \
        "$(python3 -c "print($user + $sys)")" "$(python3 -c "print($msgs / max($user + $sys, 1e-9))")" \
        "$(python3 -c "print(1e6 * ($user + $sys) / max($msgs, 1))")"
    echo "$msgs $wall $user $sys" >>"$WORK/runs"
}
# Startup: a new store (created, migrated, synced) and an empty directory.
mkdir -p "$WORK/none"
t=$( { time "$BIN" --db "$WORK/n.db" ingest -q "$WORK/none" >/dev/null 2>>"$WORK/err"; } 2>&1 )
read -r wall user sys <<<"$t"
printf 'ingest, an empty directory into a new store: %ss wall, %5.3fs cpu\n' "$wall" "$(python3 -c "print($user + $sys)")"
echo "ingest, the corpus directory ($(ls "$CORPUS" | wc -l) files):"
for run in new again; do ingest_run "$run" "$WORK/c.db" "$CORPUS"; done
echo "ingest, mbox of the corpus x $COPIES ($((size / 1000000)) MB):"
: >"$WORK/runs"
for ((r = 1; r < RUNS; r++)); do
    ingest_run new "$WORK/r$r.db" "$WORK/bench.mbox"
    rm -f "$WORK/r$r".db*
done
ingest_run new "$WORK/i.db" "$WORK/bench.mbox"
if [ "$RUNS" -gt 1 ]; then
    python3 - "$WORK/runs" <<'PY'
import statistics, sys
runs = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
rates = [m / max(w, 1e-9) for m, w, u, s in runs]
cpu = [1e6 * (u + s) / max(m, 1) for m, w, u, s in runs]
print(f"  new, {len(runs)} runs: best {max(rates):.0f}/s, median {statistics.median(rates):.0f}/s; "
      f"cpu per message best {min(cpu):.1f} us, median {statistics.median(cpu):.1f} us")
PY
fi
ingest_run again "$WORK/i.db" "$WORK/bench.mbox"
echo "  store: $(stat -c %s "$WORK/i.db") bytes; load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
