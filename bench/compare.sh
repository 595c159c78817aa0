#!/usr/bin/env bash
# compare.sh OUT_DIR - the side-by-side table of a side-by-side.sh run (re-runnable on old runs).
#
# Reads OUT_DIR/<target>/{summary.txt,steps.csv} and OUT_DIR/<target>.idle for the targets
# hotline, kamailio and kamailio256 that are present. Rates: the highest passing ladder step.
# CPU per operation: target CPU time / operations, at the highest rate that every target
# passed (so all are compared at the same load). Ratios are hotline / other.
set -euo pipefail

OUT=${1:?usage: compare.sh OUT_DIR}
TARGETS=()
for t in hotline kamailio kamailio256; do
    [ -f "$OUT/$t/steps.csv" ] && TARGETS+=("$t")
done
[ ${#TARGETS[@]} -gt 0 ] || { echo "compare: no results in $OUT" >&2; exit 1; }

# result TARGET TEST FIELD: from the RESULT line (FIELD 1 = max with 0 failures, 2 = also 0 retrans)
result() {
    local line
    line=$(grep -E "^RESULT $2 " "$OUT/$1/summary.txt" 2> /dev/null | tail -1 || true)
    [ -n "$line" ] || { echo -; return; }
    if [ "$3" = 1 ]; then sed -E 's/.*0 failures: ([0-9]+).*/\1/' <<< "$line"
    else sed -E 's/.*retransmissions: ([0-9]+).*/\1/' <<< "$line"; fi
}

# steps TARGET: "test rate achieved verdict cpu% pss_kb gen_cpu% host_cpu%" per step
steps() {
    awk -F';' 'NR > 1 {
        cpu = "-"; pss = "-"; gen = "-"; host = "-"
        n = split($13, kv, " ")
        for (i = 1; i <= n; i++) {
            split(kv[i], a, "=")
            if (a[1] == "cpu") { cpu = a[2]; sub("%", "", cpu) }
            if (a[1] == "pss") { pss = a[2]; sub("k", "", pss) }
            if (a[1] == "gen_cpu") { gen = a[2]; sub("[%/].*", "", gen) }
            if (a[1] == "host_cpu") { host = a[2]; sub("%", "", host) }
        }
        print $1, $2, $3, $11, cpu, pss, gen, host }' "$OUT/$1/steps.csv"
}

# common TEST: highest rate that every target which ran TEST passed
common() {
    local t rates="" n=0
    for t in "${TARGETS[@]}"; do
        steps "$t" | awk -v x="$1" '$1 == x { f = 1 } END { exit !f }' || continue
        n=$((n + 1))
        rates+=$(steps "$t" | awk -v x="$1" '$1 == x && $4 == "PASS" { print $2 }' | sort -un)$'\n'
    done
    printf '%s' "$rates" | sort -n | uniq -c | awk -v n=$n '$1 == n { r = $2 } END { print r + 0 }'
}

# cpu_per_op TARGET TEST RATE: microseconds of target CPU per operation at RATE (passing step)
cpu_per_op() {
    steps "$1" | awk -v x="$2" -v r="$3" '$1 == x && $2 == r && $4 == "PASS" && $5 != "-" {
        v = $5 * 10000 / $3 } END { if (v == "") print "-"; else printf "%.0f\n", v }'
}

# at_best TARGET TEST COLUMN: COLUMN (7 = SIPp caller CPU %, 8 = host CPU %) at the best step
at_best() {
    local best
    best=$(result "$1" "$2" 1)
    steps "$1" | awk -v x="$2" -v r="$best" -v c="$3" '$1 == x && $2 == r && $4 == "PASS" { v = $c }
        END { print (v == "" ? "-" : v) }'
}

# pss_max TARGET TEST: highest PSS (MB) sampled during the steps of TEST
pss_max() {
    steps "$1" | awk -v x="$2" '$1 == x && $6 != "-" && $6 + 0 > m { m = $6 + 0 }
        END { if (m == "") print "-"; else printf "%.1f\n", m / 1024 }'
}

# pss_at TARGET TEST RATE: PSS (MB) of the passing step at RATE, for memory at the same load
pss_at() {
    steps "$1" | awk -v x="$2" -v r="$3" '$1 == x && $2 == r && $4 == "PASS" && $6 != "-" { v = $6 }
        END { if (v == "") print "-"; else printf "%.1f\n", v / 1024 }'
}

pss_of() {
    sed -n 's/.*pss_kb=\([0-9]*\).*/\1/p' "$1" 2> /dev/null | tail -1 |
        awk '{ printf "%.1f\n", $1 / 1024 }' | grep . || echo -
}

reg_common=$(common register)
call_common=$(common call)
rows=(
    "REGISTER/s, 0 failures, 0 retransmissions|register|2"
    "REGISTER/s, 0 failures|register|1"
    "calls/s, 0 failures|call|1"
    "calls/s, 0 failures, 0 retransmissions|call|2"
    "CPU us per REGISTER at $reg_common/s|cpu_reg|"
    "CPU us per call at $call_common/s|cpu_call|"
    "SIPp caller CPU % at best REGISTER step|gen_reg|"
    "SIPp caller CPU % at best call step|gen_call|"
    "machine CPU % at best call step|host_call|"
    "PSS MB idle, fresh start|pss_idle|"
    "PSS MB max under REGISTER load|pss_reg|"
    "PSS MB at $call_common calls/s|pss_call_common|"
    "PSS MB max under call load|pss_call|"
    "PSS MB after the tests|pss_after|"
)

value() {
    local t=$1 what=$2 field=$3
    case $what in
        register|call) result "$t" "$what" "$field" ;;
        cpu_reg) cpu_per_op "$t" register "$reg_common" ;;
        cpu_call) cpu_per_op "$t" call "$call_common" ;;
        gen_reg) at_best "$t" register 7 ;;
        gen_call) at_best "$t" call 7 ;;
        host_call) at_best "$t" call 8 ;;
        pss_idle) pss_of "$OUT/$t.idle" ;;
        pss_reg) pss_max "$t" register ;;
        pss_call_common) pss_at "$t" call "$call_common" ;;
        pss_call) pss_max "$t" call ;;
        pss_after) grep '^# target after tests' "$OUT/$t/summary.txt" > "$OUT/$t.after" 2> /dev/null || true
                   pss_of "$OUT/$t.after" ;;
    esac
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

header="metric"
for t in "${TARGETS[@]}"; do header+="|$t"; done
has_hotline=0
[ "${TARGETS[0]}" = hotline ] && has_hotline=1
if [ "$has_hotline" = 1 ]; then
    for t in "${TARGETS[@]:1}"; do header+="|hotline/$t"; done
fi
{
    echo "$header"
    for row in "${rows[@]}"; do
        IFS='|' read -r label what field <<< "$row"
        line=$label
        declare -A v=()
        for t in "${TARGETS[@]}"; do
            v[$t]=$(value "$t" "$what" "$field")
            line+="|${v[$t]}"
        done
        if [ "$has_hotline" = 1 ]; then
            for t in "${TARGETS[@]:1}"; do line+="|$(ratio "${v[hotline]}" "${v[$t]}")"; done
        fi
        echo "$line"
        unset v
    done
} | awk -F'|' '{ printf "%-44s", $1; for (i = 2; i <= NF; i++) printf " %14s", $i; print "" }'
echo "# rates: highest passing ladder step (run.sh rules); CPU: 100 % = one core."
echo "# ratios above 1 favour hotline for rates, below 1 for CPU and memory."
