#!/usr/bin/env bash
# tls-side-by-side.sh [options] - hotline and Kamailio with phones over TLS, in one run.
#
# The sibling of side-by-side.sh for TLS, which Debian's SIPp cannot do: the phones are
# bench/load (hotline-load), one TLS connection each. Provisions the same users into hotline and
# Kamailio, then for each target:
#   memory     PSS of the target's process tree with N idle registered phones (fresh target
#              for each N), held for -s seconds with CRLF pings every 30 s and refreshes every
#              60 s, without a failed ping or refresh
#   handshake  TLS handshakes/s ladder (new connections: handshake, one CRLF ping, close)
#   register   REGISTER/s ladder over 1000 established TLS connections
#   call       calls/s ladder between 200 registered TLS phones (INVITE, 407, ACK, INVITE, 180,
#              200, ACK, hold re-INVITE, BYE), each callee answering over its own connection
# and prints the figures side by side. Everything listens on [::1]; nothing else is contacted.
#
# Options:
#   -b BINARY    hotline binary (default: `cargo build --release` of this repository)
#   -g BINARY    hotline-load binary (default: built with hotline)
#   -T LIST      tests (default memory,handshake,register,call)
#   -t LIST      targets (default hotline,kamailio)
#   -n "N..."    idle phones of the memory test (default "1000 5000 10000")
#   -s SECONDS   how long the memory test holds the phones (default 70: one refresh each)
#   -d SECONDS   duration of each ladder step (default 10)
#   -H RATES     handshake ladder, comma separated (default 100,200,400,600,800,1000,1500,2000)
#   -R RATES     REGISTER ladder (default 1000,2000,4000,6000,8000,10000,12000,16000)
#   -C RATES     call ladder (default 100,200,300,400,600,800,1000,1500,2000)
#   -x N         re-runs of a failing step (default 1)
#   -o DIR       output directory (default out/tls-side-by-side-<timestamp>)
#   -P DIR       reuse the users of an earlier run's output directory (provisioning 10,000 users
#                takes minutes)
# Environment: HOTLINE_PORT (5160; TLS on +1), KAMAILIO_PORT (5060; TLS on +1; Kamailio's
#   `myself` checks need the default port, as the From of its users has none).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;/^set -euo/d'; exit 2; }

BINARY="" LOAD="" TESTS=memory,handshake,register,call TARGETS=hotline,kamailio
PHONES="1000 5000 10000" HOLD=70 DUR=10 RETRIES=1 OUT="" PROVISIONED=""
HANDSHAKE_RATES=100,200,400,600,800,1000,1500,2000
REG_RATES=1000,2000,4000,6000,8000,10000,12000,16000
CALL_RATES=100,200,300,400,600,800,1000,1500,2000
while getopts "b:g:T:t:n:s:d:H:R:C:x:o:P:h" opt; do
    case $opt in
        b) BINARY=$OPTARG ;; g) LOAD=$OPTARG ;; T) TESTS=$OPTARG ;; t) TARGETS=$OPTARG ;;
        n) PHONES=$OPTARG ;; s) HOLD=$OPTARG ;; d) DUR=$OPTARG ;; H) HANDSHAKE_RATES=$OPTARG ;;
        R) REG_RATES=$OPTARG ;; C) CALL_RATES=$OPTARG ;; x) RETRIES=$OPTARG ;; o) OUT=$OPTARG ;;
        P) PROVISIONED=$(cd "$OPTARG" && pwd) ;;
        *) usage ;;
    esac
done
HOTLINE_PORT=${HOTLINE_PORT:-5160}
KAMAILIO_PORT=${KAMAILIO_PORT:-5060}
USERS=$(tr ' ' '\n' <<< "$PHONES" | sort -n | tail -1)
((USERS >= 1000)) || USERS=1000

# 10,000 phones are 10,000 descriptors in the target and as many in the generator.
ulimit -n $((USERS + 2048)) 2> /dev/null ||
    { echo "tls-side-by-side: cannot raise ulimit -n to $((USERS + 2048)) (ulimit -Hn)" >&2; exit 1; }

need() { command -v "$1" > /dev/null || { echo "tls-side-by-side: $1 is missing: $2" >&2; exit 1; }; }
need awk "apt-get install gawk"
need pgrep "apt-get install procps"
if [[ ,$TARGETS, == *,kamailio,* ]] && ! command -v kamailio > /dev/null; then
    echo "tls-side-by-side: kamailio is not installed, measuring hotline only" \
        "(apt-get install kamailio kamailio-sqlite-modules kamailio-tls-modules sqlite3)" >&2
    TARGETS=hotline
fi
if [[ ,$TARGETS, == *,kamailio,* ]]; then
    need sqlite3 "apt-get install sqlite3"
    need kamcmd "apt-get install kamailio"
    need openssl "apt-get install openssl"
fi

OUT=${OUT:-$HERE/out/tls-side-by-side-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotline-tls-bench.XXXXXX")
HOTLINE_PID="" KAMAILIO_RUNDIR=""
stop_targets() {
    if [ -n "$HOTLINE_PID" ] && kill -0 "$HOTLINE_PID" 2> /dev/null; then
        kill "$HOTLINE_PID"
        wait "$HOTLINE_PID" 2> /dev/null || true
    fi
    HOTLINE_PID=""
    if [ -n "$KAMAILIO_RUNDIR" ] && [ -f "$KAMAILIO_RUNDIR/kamailio.pid" ]; then
        RUNDIR=$KAMAILIO_RUNDIR "$HERE/kamailio/stop.sh" || true
    fi
    KAMAILIO_RUNDIR=""
}
trap 'stop_targets; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$OUT/summary.txt"; }

# --- binaries -----------------------------------------------------------------------------------
if [ -z "$BINARY" ] || [ -z "$LOAD" ]; then
    need cargo "install Rust (https://rustup.rs)"
    (cd "$REPO" && cargo build --release --quiet -p hotline -p hotline-load)
    : "${BINARY:=${CARGO_TARGET_DIR:-$REPO/target}/release/hotline}"
    : "${LOAD:=${CARGO_TARGET_DIR:-$REPO/target}/release/hotline-load}"
fi

# --- hotline: the shipped defaults, except what [::1] and 10,000 phones need --------------------
# Every phone connects from [::1]: the flood limits and the connections per address and prefix
# are raised out of the way, as kamailio.cfg raises pike's; the tables are sized for the phones.
CONFIG=$WORK/hotline.toml
cat > "$CONFIG" <<EOF
domain = "hotline.bench"
data_dir = "$WORK/data"

[listen]
udp = ["[::1]:$HOTLINE_PORT"]
tcp = ["[::1]:$HOTLINE_PORT"]
tls = ["[::1]:$((HOTLINE_PORT + 1))"]

[registrar]
max_bindings = $((USERS + 2000))

[flood]
per_address = 1000000000
per_prefix = [[64, 1000000000]]

[auth]
algorithms = ["MD5"]

[limits]
max_connections = $((USERS + 2000))
max_connections_per_address = $((USERS + 2000))
max_connections_per_prefix = [[64, $((USERS + 2000))]]
EOF

# start_hotline: hotline on $WORK/data, until it is ready; sets HOTLINE_PID
start_hotline() {
    "$BINARY" --config "$CONFIG" serve 2> "$WORK/hotline.log" &
    HOTLINE_PID=$!
    for ((i = 0; i < 150; i++)); do
        grep -q ' ready' "$WORK/hotline.log" && break
        kill -0 "$HOTLINE_PID" 2> /dev/null || break
        sleep 0.2
    done
    if ! grep -q ' ready' "$WORK/hotline.log"; then
        local state=running
        kill -0 "$HOTLINE_PID" 2> /dev/null || { wait "$HOTLINE_PID"; state="exited with $?"; }
        cp "$WORK/hotline.log" "$OUT/hotline-start.log"
        tail -20 "$WORK/hotline.log" >&2
        echo "tls-side-by-side: hotline did not start ($state; log: $OUT/hotline-start.log)" >&2
        exit 1
    fi
}

# --- users: hotline makes the passwords, once; every start copies the data directory ------------
CSV=$OUT/users.csv
if [ -n "$PROVISIONED" ]; then
    [ "$PROVISIONED" = "$OUT" ] || cp "$PROVISIONED/users.csv" "$CSV"
    cp -a "$PROVISIONED/users-data" "$WORK/users-data"
    (($(grep -c ';' "$CSV") >= USERS)) ||
        { echo "tls-side-by-side: $PROVISIONED holds fewer than $USERS users" >&2; exit 1; }
else
    # Through a running server (its control socket) each user costs one transaction in a
    # database already open, several times faster than opening it for each.
    echo "provisioning $USERS users ..." >&2
    start_hotline
    echo SEQUENTIAL > "$CSV"
    for ((ext = 1000; ext < 1000 + USERS; ext++)); do
        password=$("$BINARY" --config "$CONFIG" user add "$ext" | awk '$1 == "password:" { print $2 }')
        [ -n "$password" ] || { echo "tls-side-by-side: no password printed for $ext" >&2; exit 1; }
        echo "$ext;$password" >> "$CSV"
    done
    stop_targets
    mv "$WORK/data" "$WORK/users-data"
    cp -a "$WORK/users-data" "$OUT/users-data"
fi

# start_target NAME: a fresh instance (no bindings); sets PID
start_target() {
    case $1 in
        hotline)
            rm -rf "$WORK/data" && cp -a "$WORK/users-data" "$WORK/data"
            start_hotline
            PID=$HOTLINE_PID PORT=$((HOTLINE_PORT + 1)) DOMAIN=hotline.bench ;;
        kamailio)
            # TLS connections live in shared memory: 1 GB for 10,000 of them.
            KAMAILIO_RUNDIR=$WORK/kamailio
            SHM_MB=1024 MAXCONN=$((USERS + 2000)) USERS_CSV=$CSV SIPPORT=$KAMAILIO_PORT \
                TLSPORT=$((KAMAILIO_PORT + 1)) RUNDIR=$KAMAILIO_RUNDIR "$HERE/kamailio/start.sh" \
                2> "$WORK/kamailio-start.log"
            PID=$(cat "$KAMAILIO_RUNDIR/kamailio.pid") PORT=$((KAMAILIO_PORT + 1)) DOMAIN="[::1]" ;;
    esac
    sleep 2
}

# load NAME PHONES OUTFILE TEST ARGS...: the generator against the running target
load() {
    local name=$1 phones=$2 out=$3
    shift 3
    echo "# $(date -u +%H:%M:%S) $name: hotline-load $* (uptime:$(uptime | sed 's/.*load average//'))" |
        tee -a "$out"
    "$LOAD" --target "[::1]:$PORT" --domain "$DOMAIN" --users "$CSV" --phones "$phones" \
        --pid "$PID" "$@" 2>&1 | tee -a "$out" || true
}

for target in ${TARGETS//,/ }; do
    if [[ ,$TESTS, == *,memory,* ]]; then
        for n in $PHONES; do
            start_target "$target"
            "$HERE/measure_rss.sh" "$PID" > "$OUT/$target.idle-$n"
            # 4 handshakes at a time: with more, Kamailio 5.6.3's TLS corrupts its shared memory
            # and a worker aborts (kamailio#3791) before 5,000 phones are connected.
            load "$target" "$n" "$OUT/$target.memory-$n" --concurrency 4 --expires 300 \
                hold --seconds "$HOLD" --ping 30 --refresh 60 --rate 1000
            stop_targets
        done
    fi
    # A fresh target for each ladder: one that broke at the top of a ladder (Kamailio's TLS
    # workers abort under a burst of handshakes) does not fail the next.
    LADDER=(--duration "$DUR" --retries "$RETRIES")
    for test in handshake register call; do
        [[ ,$TESTS, == *,$test,* ]] || continue
        start_target "$target"
        say "# $target pid $PID on [::1]:$PORT"
        case $test in
            handshake) load "$target" 2 "$OUT/$target.handshake" handshake --rates "$HANDSHAKE_RATES" "${LADDER[@]}" ;;
            register) load "$target" 1000 "$OUT/$target.register" register --rates "$REG_RATES" "${LADDER[@]}" ;;
            call) load "$target" 200 "$OUT/$target.call" call --rates "$CALL_RATES" "${LADDER[@]}" ;;
        esac
        kill -0 "$PID" 2> /dev/null || say "# $target $test: the target is gone (pid $PID)"
        if [ -n "$KAMAILIO_RUNDIR" ]; then
            grep -E 'CRITICAL|ALERT' "$KAMAILIO_RUNDIR/kamailio.log" | tail -20 > "$OUT/$target.$test.errors" || true
        fi
        stop_targets
    done
done

# --- the table ----------------------------------------------------------------------------------
"$HERE/tls-compare.sh" "$OUT" | tee -a "$OUT/summary.txt"
