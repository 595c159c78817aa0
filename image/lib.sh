# shellcheck shell=bash
# Helpers shared by image/build.sh, image/build-binary.sh and board/qemu/boot-test.sh.
# Source it after setting SCRIPT to the name messages start with.

die() {
    echo "$SCRIPT: error: $*" >&2
    exit 1
}
say() { echo "$SCRIPT: $*" >&2; }

# Prints the comment block at the top of the script that was run.
usage() {
    sed -n '2,/^set -e/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
}

# Reads "tool package" lines and dies naming the packages of the tools that are not installed.
require_tools() {
    local -a missing=()
    local tool package
    while read -r tool package; do
        command -v "$tool" >/dev/null || missing+=("$package")
    done
    ((${#missing[@]} == 0)) || die "missing tools; install them with: apt-get install ${missing[*]}"
}
