#!/usr/bin/env bash
# side-by-side.sh [options] - hotline and Kamailio under the same SIPp load, in one run.
#
# Provisions the same 1000 users (random passwords) into a fresh hotline and, when `kamailio` is
# installed, into Kamailio (kamailio/start.sh reads the same CSV), runs run.sh against hotline,
# Kamailio with its default shared memory and Kamailio with SHM_MB=256, one after the other, and
# prints the figures side by side with the ratios. Everything listens on [::1]; nothing else is
# contacted.
#
# Options:
#   -b BINARY    hotline binary (default: `cargo build --release` of this repository)
#   -Q           quick run (a few minutes): 5 s steps, short ladders
#   -d SECONDS   duration of each ladder step (default 20)
#   -R "RATES"   REGISTER ladder, registrations/s, for every target
#                (default "2000 4000 5000 6000 7000 8000 10000 12000")
#   -C "RATES"   call ladder, calls/s, for hotline and Kamailio 256 MB
#                (default "200 350 700 1000 1200 1500 2000 2500 3000")
#   -c "RATES"   call ladder for Kamailio default shm (default "200 300 350 400")
#   -T LIST      run.sh tests (default check,register,call)
#   -t LIST      targets, comma separated (default hotline,kamailio,kamailio256)
#   -x N         re-runs of a failing step (run.sh -x, default 1)
#   -q PCT       wait before each step until the machine is <= PCT % busy (run.sh -q, default 30)
#   -w SECONDS   longest such wait (run.sh -Q, default 30)
#   -o DIR       output directory (default out/side-by-side-<timestamp>)
#   -u N         number of users (default 1000, extensions from 1000)
# Environment: HOTLINE_PORT (5160; TLS on +1), KAMAILIO_PORT (5060; TLS on +1), SIPP.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;/^set -euo/d'; exit 2; }

BINARY="" DUR=20 TESTS=check,register,call TARGETS=hotline,kamailio,kamailio256 RETRIES=1
REG_RATES="2000 4000 5000 6000 7000 8000 10000 12000"
CALL_RATES="200 350 700 1000 1200 1500 2000 2500 3000"
KAM_CALL_RATES="200 300 350 400"
QUIET=30 QUIET_MAX=30 OUT="" USERS=1000
while getopts "b:Qd:R:C:c:T:t:x:q:w:o:u:h" opt; do
    case $opt in
        b) BINARY=$OPTARG ;;
        Q) DUR=5 REG_RATES="2000 5000 8000 12000" CALL_RATES="200 600 1000 1500"
           KAM_CALL_RATES="200 350 400" RETRIES=0 QUIET_MAX=10 ;;
        d) DUR=$OPTARG ;; R) REG_RATES=$OPTARG ;; C) CALL_RATES=$OPTARG ;;
        c) KAM_CALL_RATES=$OPTARG ;; T) TESTS=$OPTARG ;; t) TARGETS=$OPTARG ;;
        x) RETRIES=$OPTARG ;; q) QUIET=$OPTARG ;; w) QUIET_MAX=$OPTARG ;;
        o) OUT=$OPTARG ;; u) USERS=$OPTARG ;; *) usage ;;
    esac
done
HOTLINE_PORT=${HOTLINE_PORT:-5160}
KAMAILIO_PORT=${KAMAILIO_PORT:-5060}

need() { command -v "$1" > /dev/null || { echo "side-by-side: $1 is missing: $2" >&2; exit 1; }; }
need "${SIPP:-sipp}" "apt-get install sip-tester"
need awk "apt-get install gawk"
need pgrep "apt-get install procps"
need od "apt-get install coreutils"
[[ ,$TARGETS, == *,hotline,* ]] || [[ -n $BINARY ]] || BINARY=unused
if [[ ,$TARGETS, == *,kamailio* ]] && ! command -v kamailio > /dev/null; then
    echo "side-by-side: kamailio is not installed, measuring hotline only" \
        "(apt-get install kamailio kamailio-sqlite-modules kamailio-tls-modules sqlite3)" >&2
    TARGETS=hotline
fi
if [[ ,$TARGETS, == *,kamailio* ]]; then
    need sqlite3 "apt-get install sqlite3"
    need kamcmd "apt-get install kamailio"
    need openssl "apt-get install openssl"
    [ -f /usr/share/kamailio/db_sqlite/standard-create.sql ] ||
        { echo "side-by-side: apt-get install kamailio-sqlite-modules" >&2; exit 1; }
fi

OUT=${OUT:-$HERE/out/side-by-side-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotline-bench.XXXXXX")
HOTLINE_PID=""
KAMAILIO_RUNDIR=""
cleanup() {
    if [ -n "$HOTLINE_PID" ] && kill -0 "$HOTLINE_PID" 2> /dev/null; then
        kill "$HOTLINE_PID"
        wait "$HOTLINE_PID" 2> /dev/null || true
    fi
    if [ -n "$KAMAILIO_RUNDIR" ] && [ -f "$KAMAILIO_RUNDIR/kamailio.pid" ]; then
        RUNDIR=$KAMAILIO_RUNDIR "$HERE/kamailio/stop.sh" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$OUT/side-by-side.txt"; }

# --- hotline binary -----------------------------------------------------------------------------
if [ -z "$BINARY" ]; then
    need cargo "install Rust (https://rustup.rs)"
    (cd "$REPO" && cargo build --release --quiet)
    BINARY=${CARGO_TARGET_DIR:-$REPO/target}/release/hotline
fi
[ "$BINARY" = unused ] || [ -x "$BINARY" ] || { echo "side-by-side: no binary at $BINARY" >&2; exit 1; }

# --- hotline configuration: the shipped defaults, except what a benchmark on [::1] needs --------
# Every SIPp instance sends from [::1], so the flood limits (per address and per prefix) are
# raised out of the way, as kamailio.cfg raises pike's; SIPp 3.6 answers only MD5 challenges.
CONFIG=$WORK/hotline.toml
cat > "$CONFIG" <<EOF
domain = "hotline.bench"
data_dir = "$WORK/data"

[listen]
udp = ["[::1]:$HOTLINE_PORT"]
tcp = ["[::1]:$HOTLINE_PORT"]
tls = ["[::1]:$((HOTLINE_PORT + 1))"]

[flood]
per_address = 1000000000
per_prefix = [[64, 1000000000]]

[auth]
algorithms = ["MD5"]

# The checks fail authentication on purpose, and every request comes from [::1]: with the
# default bans, [::1] is banned for an hour a minute into the ladder and every later step fails.
# The loosest bans there are: 100 failures within a second, banned for a second.
[bans]
failures = 100
window = 1
duration = 1
EOF

# --- users: hotline makes the passwords, the CSV carries them to SIPp and Kamailio -------------
CSV=$OUT/users.csv
if [[ ,$TARGETS, == *,hotline,* ]]; then
    echo "provisioning $USERS users into hotline ..." >&2
    echo SEQUENTIAL > "$CSV"
    for ((ext = 1000; ext < 1000 + USERS; ext++)); do
        password=$("$BINARY" --config "$CONFIG" user add "$ext" | awk '$1 == "password:" { print $2 }')
        [ -n "$password" ] || { echo "side-by-side: no password printed for $ext" >&2; exit 1; }
        echo "$ext;$password" >> "$CSV"
    done
else
    # Without hotline: random passwords (hex of 18 random bytes).
    { echo SEQUENTIAL
      for ((ext = 1000; ext < 1000 + USERS; ext++)); do
          echo "$ext;$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
      done; } > "$CSV"
fi

RUN_ARGS=(-u "$CSV" -d "$DUR" -R "$REG_RATES" -x "$RETRIES" -q "$QUIET" -Q "$QUIET_MAX")

# measure TARGET PORT PID CALL_RATES TESTS: run.sh against one target, idle memory first
measure() {
    local name=$1 port=$2 pid=$3 rates=$4 tests=$5
    sleep 5
    "$HERE/measure_rss.sh" "$pid" > "$OUT/$name.idle"
    "$HERE/run.sh" ::1 "$port" "${RUN_ARGS[@]}" -T "$tests" -C "$rates" -S $((port + 1)) -p "$pid" \
        -o "$OUT/$name" | tee "$OUT/$name.log"
}

# --- hotline ------------------------------------------------------------------------------------
if [[ ,$TARGETS, == *,hotline,* ]]; then
    "$BINARY" --config "$CONFIG" serve 2> "$WORK/hotline.log" &
    HOTLINE_PID=$!
    for ((i = 0; i < 50; i++)); do
        grep -q ' ready' "$WORK/hotline.log" && break
        kill -0 "$HOTLINE_PID" 2> /dev/null || break
        sleep 0.2
    done
    grep -q ' ready' "$WORK/hotline.log" ||
        { tail -20 "$WORK/hotline.log" >&2; echo "side-by-side: hotline did not start" >&2; exit 1; }
    say "# hotline $("$BINARY" --version) pid $HOTLINE_PID on [::1]:$HOTLINE_PORT"
    measure hotline "$HOTLINE_PORT" "$HOTLINE_PID" "$CALL_RATES" "$TESTS"
    kill "$HOTLINE_PID"
    wait "$HOTLINE_PID" || true
    HOTLINE_PID=""
    # what a run logs, without the per-request lines
    grep -v -E 'registered|rejected request' "$WORK/hotline.log" | tail -50 > "$OUT/hotline.stderr"
fi

# --- Kamailio, default shared memory and 256 MB -------------------------------------------------
kamailio_run() {
    local name=$1 shm=$2 rates=$3 tests=$4
    KAMAILIO_RUNDIR=$WORK/kamailio-$name
    SHM_MB=$shm USERS_CSV=$CSV SIPPORT=$KAMAILIO_PORT TLSPORT=$((KAMAILIO_PORT + 1)) \
        RUNDIR=$KAMAILIO_RUNDIR "$HERE/kamailio/start.sh"
    say "# $(kamailio -v | head -1) pid $(cat "$KAMAILIO_RUNDIR/kamailio.pid") shm ${shm:-default} MB"
    measure "$name" "$KAMAILIO_PORT" "$(cat "$KAMAILIO_RUNDIR/kamailio.pid")" "$rates" "$tests"
    RUNDIR=$KAMAILIO_RUNDIR "$HERE/kamailio/stop.sh"
    KAMAILIO_RUNDIR=""
}
if [[ ,$TARGETS, == *,kamailio,* ]]; then
    kamailio_run kamailio "" "$KAM_CALL_RATES" "$TESTS"
fi
# More shared memory changes nothing for the stateless REGISTER path: calls only.
KAM256_TESTS=$(tr ',' '\n' <<< "$TESTS" | { grep -v -x register || true; } | paste -sd, -)
if [[ ,$TARGETS, == *,kamailio256,* ]] && [ -n "$KAM256_TESTS" ]; then
    kamailio_run kamailio256 256 "$CALL_RATES" "$KAM256_TESTS"
fi

# --- the table ----------------------------------------------------------------------------------
"$HERE/compare.sh" "$OUT" | tee -a "$OUT/side-by-side.txt"
