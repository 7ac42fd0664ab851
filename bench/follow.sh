#!/usr/bin/env bash
# Throughput of `rebound follow --once` (parse + join + classify + store, one durable
# commit per MiB of log) on a synthetic log made of N copies of the real harness log
# (tests/data/maillog-postfix-harness.txt) with fresh queue ids, and of the line parser
# alone (the ignored test follow_parse_speed). Usage: bench/follow.sh [COPIES=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${1:-2000}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
python3 - "$COPIES" tests/data/maillog-postfix-harness.txt >"$DIR/maillog" <<'PY'
import re, sys
n, src = int(sys.argv[1]), open(sys.argv[2]).read()
qid = re.compile(r'\b([0-9A-F]{11})\b')
for i in range(n):
    text = qid.sub(lambda m: "%s%05X" % (m.group(1)[:6], i % 0xFFFFF), src)
    sys.stdout.write(text.replace("@app.example.test>", ".%d@app.example.test>" % i).replace("@vm>", ".%d@vm>" % i))
PY
LINES=$(wc -l <"$DIR/maillog")
cargo build --release --quiet --bin rebound
start=$(date +%s.%N)
./target/release/rebound follow --once --db "$DIR/r.db" "$DIR/maillog" >/dev/null
end=$(date +%s.%N)
python3 -c "s=$end-$start; print(f'follow --once: {$LINES} lines in {s:.2f} s = {$LINES/s:,.0f} lines/s')"
cargo test --release --quiet --test it follow_parse_speed -- --ignored --nocapture 2>/dev/null | grep 'lines/s' || true
