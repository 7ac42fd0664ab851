#!/bin/sh
# Parse throughput: rebound vs Sisimai on the same files, in one run.
#
#   bench/parse.sh [DIR] [PASSES]      (default ../shared/corpus/sisimai, 5 passes)
#
# Both read every message into memory first and then parse it PASSES times on one core;
# rates are messages per CPU second of the parsing thread/process (the machine may be
# shared: CPU time is the fair clock), wall-clock rates are printed too.
# Sisimai: Debian's libsisimai-perl (apt-get install -y libsisimai-perl), called as
# Sisimai->make(\$mail, delivered => 1) per message. Set CLASSIFY=1 to time rebound's
# parse+classify instead of parse alone.
set -eu
DIR=${1:-../shared/corpus/sisimai}
PASSES=${2:-5}
BIN=${REBOUND:-target/release/rebound}
[ -x "$BIN" ] || cargo build --release
FLAG=""
[ "${CLASSIFY:-0}" = 1 ] && FLAG="--classify"

R=$("$BIN" bench $FLAG --json --passes "$PASSES" "$DIR")
RATE=$(printf '%s' "$R" | sed -n 's/.*"messages_per_cpu_sec":\([0-9.]*\).*/\1/p')
WALL=$(printf '%s' "$R" | sed -n 's/.*"messages_per_sec":\([0-9.]*\).*/\1/p')
echo "rebound${FLAG:+ (parse+classify)}: $RATE messages/CPU-s ($WALL messages/s wall)"

if ! perl -MSisimai -e 1 2>/dev/null; then
    echo "sisimai: not installed (apt-get install -y libsisimai-perl)"; exit 0
fi
S=$(find "$DIR" -type f -name '*.eml' | sort | perl -MSisimai -MTime::HiRes=time -e '
    my $passes = shift @ARGV;
    my @mails;
    while (my $f = <STDIN>) { chomp $f; local $/; open(my $fh, "<", $f) or next; push @mails, scalar <$fh>; }
    my ($u0, $s0) = times; my $t0 = time; my $n = 0;
    for (1 .. $passes) { for my $m (@mails) { my $r = Sisimai->make(\$m, delivered => 1); $n++; } }
    my ($u1, $s1) = times; my $t1 = time;
    printf "%.0f %.0f %s\n", $n / (($u1 - $u0 + $s1 - $s0) || 1e-9), $n / (($t1 - $t0) || 1e-9), $Sisimai::VERSION;
' "$PASSES")
SRATE=${S%% *}; REST=${S#* }; SWALL=${REST%% *}; SVER=${REST#* }
echo "sisimai $SVER: $SRATE messages/CPU-s ($SWALL messages/s wall)"
awk -v a="$RATE" -v b="$SRATE" 'BEGIN { if (b > 0) printf "ratio: rebound is %.1fx Sisimai\n", a / b }'
