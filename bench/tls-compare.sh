#!/usr/bin/env bash
# tls-compare.sh OUT - the side-by-side table of a finished tls-side-by-side.sh run (re-runnable).
set -euo pipefail
OUT=${1:?usage: tls-compare.sh OUT}
cd "$OUT"

targets=()
for t in hotline kamailio; do
    ls "$t".* > /dev/null 2>&1 && targets+=("$t")
done

# kv FILE KEY: value of KEY=… in the first line of FILE holding it
kv() { grep -o -m1 "$2=[^ ]*" "$1" 2> /dev/null | cut -d= -f2 || true; }

# value TARGET METRIC: one cell of the table
value() {
    local t=$1 metric=$2 f n
    case $metric in
        idle) kv "$(ls "$t".idle-* 2> /dev/null | head -1)" pss_kb | awk 'NF { printf "%.1f", $1 / 1024 }' ;;
        pss-*)
            n=${metric#pss-} f=$t.memory-$n
            grep -m1 'phones registered' "$f" 2> /dev/null | grep -o 'target_pss_kb=[0-9]*' |
                awk -F= '{ printf "%.1f", $2 / 1024 }' ;;
        per-*)
            n=${metric#per-} f=$t.memory-$n
            local idle held
            idle=$(kv "$t.idle-$n" pss_kb)
            held=$(grep -m1 'phones registered' "$f" 2> /dev/null | grep -o 'target_pss_kb=[0-9]*' | cut -d= -f2)
            [ -n "$idle" ] && [ -n "$held" ] && awk -v i="$idle" -v h="$held" -v n="$n" 'BEGIN { printf "%.1f", (h - i) / n }' ;;
        rss-*)
            n=${metric#rss-} f=$t.memory-$n
            grep -m1 '^# held' "$f" 2> /dev/null | grep -o 'target_rss_kb=[0-9]*' |
                awk -F= '{ printf "%.1f", $2 / 1024 }' ;;
        hold-*)
            n=${metric#hold-} f=$t.memory-$n
            if grep -q '^RESULT hold' "$f" 2> /dev/null; then
                grep -m1 '^RESULT hold' "$f" | awk '{ print $5 }' | tr -d ':'
            else
                grep -m1 '^# connected' "$f" 2> /dev/null | awk '{ print "only", $3, "connected" }'
            fi ;;
        handshake | register | call)
            grep -m1 "^RESULT $metric" "$t.$metric" 2> /dev/null |
                sed -n 's/.*with 0 failures: \([0-9]*\)\/s.*/\1/p; s/.*with 0 failures: none.*/0/p' ;;
        cpu-*)
            # target CPU per operation at the highest step every target passed
            local test=${metric#cpu-} rate
            rate=$(common_rate "$test")
            [ -n "$rate" ] && awk -v r="$rate" -v m="$test" '$1 == m && $2 == r && $11 == "PASS" {
                for (i = 12; i <= NF; i++) if ($i ~ /^cpu_us_per_op=/) { split($i, a, "="); v = a[2] } }
                END { if (v != "") print v }' "$t.$test" 2> /dev/null ;;
        top-*)
            # the first failing step: rate, failures, target CPU, generator CPU
            local test=${metric#top-}
            awk -v m="$test" '$1 == m && $11 == "FAIL" && !done {
                cpu = gen = ""; for (i = 12; i <= NF; i++) { if ($i ~ /^cpu=/) cpu = substr($i, 5); if ($i ~ /^gen_cpu=/) gen = substr($i, 9) }
                printf "%s/s: %s failed, cpu %s, gen %s", $2, $5, cpu, gen; done = 1 }' "$t.$test" 2> /dev/null ;;
    esac
}

# common_rate TEST: the highest rate that every target passed
common_rate() {
    local best=""
    for t in "${targets[@]}"; do
        local r
        r=$(value "$t" "$1" || true)
        [ -n "$r" ] || return 0
        if [ -z "$best" ] || ((r < best)); then best=$r; fi
    done
    echo "$best"
}

metrics=(idle)
for n in $(ls "${targets[0]}".memory-* 2> /dev/null | sed 's/.*-//' | sort -n); do
    metrics+=("pss-$n" "per-$n" "rss-$n" "hold-$n")
done
metrics+=(handshake register call cpu-handshake cpu-register cpu-call top-handshake top-register top-call)

label() {
    case $1 in
        idle) echo "PSS MB idle, fresh start" ;;
        pss-*) echo "PSS MB, ${1#pss-} idle TLS phones registered" ;;
        per-*) echo "PSS KiB per idle TLS phone (${1#per-})" ;;
        rss-*) echo "RSS MB (sum over processes), ${1#rss-} phones held" ;;
        hold-*) echo "${1#hold-} phones held: pings and refreshes" ;;
        handshake) echo "TLS handshakes/s, 0 failures" ;;
        register) echo "REGISTER/s over TLS, 0 failures" ;;
        call) echo "calls/s over TLS, 0 failures" ;;
        cpu-*) echo "CPU us per ${1#cpu-} at $(common_rate "${1#cpu-}")/s" ;;
        top-*) echo "first failing ${1#top-} step" ;;
    esac
}

printf '%-48s' metric
for t in "${targets[@]}"; do printf ' %28s' "$t"; done
[ ${#targets[@]} -eq 2 ] && printf ' %10s' ratio
echo
for m in "${metrics[@]}"; do
    printf '%-48s' "$(label "$m")"
    vals=()
    for t in "${targets[@]}"; do
        v=$(value "$t" "$m" || true)
        vals+=("${v:--}")
        printf ' %28s' "${v:--}"
    done
    if [ ${#targets[@]} -eq 2 ] && [[ ${vals[0]} =~ ^[0-9.]+$ ]] && [[ ${vals[1]} =~ ^[0-9.]+$ ]]; then
        awk -v a="${vals[0]}" -v b="${vals[1]}" 'BEGIN { if (b > 0) printf " %10.2f", a / b }'
    fi
    echo
done
echo "# ratios: hotline / Kamailio; above 1 favours hotline for rates, below 1 for CPU and memory."
