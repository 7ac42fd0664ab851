#!/usr/bin/env bash
# LMTP throughput: Postfix's null LMTP server (smtp-sink -L) against `rebound serve`
# (durable: each 250 after a synchronous write of the intake spool, or with SPOOL=0 after COMMIT
# and an fdatasync of the WAL; fresh database), both driven by `smtp-source -L` in the
# same run, at 1, 8 and 32 sessions on the 4 KB Postfix DSN, over loopback TCP and over a
# unix socket (Postfix's lmtp:inet: and lmtp:unix:). Prints messages/s, the
# ratio rebound/smtp-sink, CPU per message of each server (and rebound's by thread),
# rebound's peak RSS, its group-commit figures (jobs per transaction, jobs per WAL flush, flush and wait times)
# and the load average before and after (on a shared machine, judge the rates by it;
# CPU per message moves less with load than messages/s).
#
# Usage: [SPOOL=0] bench/lmtp.sh [-m MESSAGES] [-r RUNS] [-s "1 8 32"] [-t "inet unix"] [BINARY]
#   BINARY defaults to target/release/rebound (build it first: cargo build --release)
# Needs smtp-source and smtp-sink (Debian package postfix) and ../shared/postfix-harness.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PATH:/usr/sbin
M=20000 R=3 SESSIONS="1 8 32" TRANSPORTS="inet unix"
while getopts "m:r:s:t:h" o; do
    case $o in
    m) M=$OPTARG ;; r) R=$OPTARG ;; s) SESSIONS=$OPTARG ;; t) TRANSPORTS=$OPTARG ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
    esac
done
for t in $TRANSPORTS; do
    case $t in inet | unix) ;; *) echo "lmtp.sh: -t takes inet and/or unix, not $t" >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
BIN=${1:-target/release/rebound}
MSG=../shared/postfix-harness/samples/dsn-550-4k.eml
[ -x "$BIN" ] || { echo "lmtp.sh: $BIN not built (cargo build --release)" >&2; exit 1; }
[ -f "$MSG" ] || { echo "lmtp.sh: $MSG missing (../shared beside the repo)" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "lmtp.sh: smtp-source missing (apt-get install postfix)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
tr -d '\r' <"$MSG" >"$WORK/msg"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "socket $1 never appeared" >&2; return 1; }

# cpu PID... -> CPU milliseconds (user + system) the processes used so far
cpu() { local t=0; for p in "$@"; do t=$((t + $(awk '{ print ($14 + $15) * 10 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }

# threads PID -> "name=ticks ..." per thread (same names summed), for CPU by stage
threads() { for t in /proc/"$1"/task/*; do printf '%s=%s ' "$(tr ' ' _ <"$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"; done; }
# per_thread BEFORE AFTER MESSAGES -> "name=us/msg ..." (10 ms ticks)
per_thread() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
        split(a, x, " "); for (i in x) { split(x[i], kv, "="); t0[kv[1]] += kv[2] }
        split(b, y, " "); for (i in y) { split(y[i], kv, "="); t1[kv[1]] += kv[2] }
        for (k in t1) if (t1[k] > t0[k]) printf "%s=%.0f ", k, (t1[k] - t0[k]) * 10000 / n }'
}

# rate SESSIONS ENDPOINT PID... -> "median msg/s over R runs" and "CPU us per message"
rate() {
    local s=$1 endpoint=$2 rates=() c0 c1
    shift 2
    c0=$(cpu "$@")
    for _ in $(seq "$R"); do
        local t0 t1
        t0=$(date +%s.%N)
        smtp-source -L -d -s "$s" -m "$M" -F "$WORK/msg" -f '' -t bounces+bench@bounces.example.test -M bench.example.test "$endpoint"
        t1=$(date +%s.%N)
        rates+=("$(awk -v m="$M" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }')")
    done
    c1=$(cpu "$@")
    printf '%s\n' "${rates[@]}" | sort -n | awk -v c=$((c1 - c0)) -v n=$((M * R)) '{ a[NR] = $1 } END { printf "%s %.0f\n", a[int((NR + 1) / 2)], c * 1000 / n }'
}

sink_port=$(free_port)
smtp-sink -L -4 -u nobody "inet:127.0.0.1:$sink_port" 1024 & SINK=$!; PIDS+=($SINK)
# A second smtp-sink for the unix socket (it listens on one endpoint); rebound serves both.
smtp-sink -L -u nobody "unix:$WORK/sink.sock" 1024 & SINK_UNIX=$!; PIDS+=($SINK_UNIX)
reb_port=$(free_port)
# SPOOL=0: 250 only after the store's commit (lmtp.spool = false).
printf '[lmtp]\nspool = %s\n' "$([ "${SPOOL:-1}" = 0 ] && echo false || echo true)" >"$WORK/rebound.toml"
"$BIN" --config "$WORK/rebound.toml" serve --listen "127.0.0.1:$reb_port" --socket "$WORK/rebound.sock" --db "$WORK/bench.db" --log-format json 2>"$WORK/rebound.log" & REB=$!; PIDS+=($REB)
wait_port "$sink_port"; wait_port "$reb_port"; wait_socket "$WORK/sink.sock"; wait_socket "$WORK/rebound.sock"

echo "LMTP benchmark: $M messages of $(wc -c <"$WORK/msg") bytes per run, median of $R runs, session reuse (-d), spool $([ "${SPOOL:-1}" = 0 ] && echo off || echo on)"
# The figures move with whatever else runs on the machine: say how busy it was.
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
echo "(CPU: microseconds of server CPU per message, user + system, 10 ms ticks)"
breakdown=()
printf '%-9s %-5s %14s %14s %8s %10s %10s\n' sessions via smtp-sink rebound ratio sink-cpu reb-cpu
for t in $TRANSPORTS; do
    if [ "$t" = unix ]; then
        sink="unix:$WORK/sink.sock" sink_pid=$SINK_UNIX reb="unix:$WORK/rebound.sock"
    else
        sink="inet:127.0.0.1:$sink_port" sink_pid=$SINK reb="inet:127.0.0.1:$reb_port"
    fi
    for s in $SESSIONS; do
        # smtp-sink forks nothing, but count its children anyway.
        read -r a acpu < <(rate "$s" "$sink" "$sink_pid" $(pgrep -P "$sink_pid" || true))
        t0=$(threads "$REB")
        read -r b bcpu < <(rate "$s" "$reb" "$REB")
        t1=$(threads "$REB")
        printf '%-9s %-5s %10s/s %10s/s %8s %8sus %8sus\n' "$s" "$t" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')" "$acpu" "$bcpu"
        breakdown+=("$(printf '  %-12s %s' "$s $t:" "$(per_thread "$t0" "$t1" $((M * R)))")")
    done
done
# Where rebound's CPU goes: tokio workers (sockets, parse, classify, deflate), the
# writer (inserts, COMMIT), the WAL flusher (fdatasync), the spool (its writes, answers),
# the applier (parse, classify, store batches), the checkpointer.
echo "rebound CPU by thread, us per message:"
printf '%s\n' "${breakdown[@]}"
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$REB/status")
stored=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from messages').fetchone()[0])" "$WORK/bench.db")
kill -TERM "$REB"; wait "$REB" || true
echo "rebound: peak RSS $((rss / 1024)) MiB; messages stored $stored"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# The final totals: batch_mean = jobs per transaction, flush_jobs_mean = jobs made durable
# by one fdatasync of the WAL, durable_ms_mean = BEGIN to answered.
grep -o '"batches[^}]*' "$WORK/rebound.log" | tail -1 | tr -d '"' | tr ',' '\n' | sed 's/^/  /' || true
# The intake spool (on by default): messages per durable write of the spool, its time,
# messages per store transaction (every 250 follows the spool's write) and whether the
# writes went direct (O_DIRECT | O_DSYNC) or through the page cache and fdatasync.
grep -o '"spool_flushes[^}]*' "$WORK/rebound.log" | tail -1 | tr -d '"' | tr ',' '\n' | sed 's/^/  /' || true
