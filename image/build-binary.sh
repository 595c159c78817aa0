#!/usr/bin/env bash
# Builds the fully static aarch64 hotline binary for the Raspberry Pi (3, 4, Zero 2 W with a
# 64-bit OS) without a container engine, and runs its tests under qemu-user.
#
#   image/build-binary.sh build [cargo args]   release binary:
#                                               target/aarch64-unknown-linux-gnu/release/hotline
#   image/build-binary.sh test  [cargo args]   `cargo test` under qemu-aarch64-static
#                                               (default args: --lib, the unit tests)
#   image/build-binary.sh env                  print the environment, to use cargo by hand
#   image/build-binary.sh deps                 only install what is missing
#
# rustup cannot add the aarch64 standard library here, so the compiler is Debian's rustc-web
# (/usr/bin/rustc) with its standard library for arm64 (libstd-rust-web-dev:arm64); cargo stays
# the one on PATH. The linker is Debian's aarch64 cross gcc, with +crt-static for a binary that
# needs no library on the board. Missing packages are installed with apt-get (as root); 32-bit
# Arm is not built this way (Debian's armhf standard library does not match rustc-web): use
# `cross` with Cross.toml for those targets. CARGO_TARGET_DIR is respected.
set -euo pipefail

TARGET=aarch64-unknown-linux-gnu
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SCRIPT=build-binary
# shellcheck source=image/lib.sh
. "$ROOT/image/lib.sh"

# Debian packages this build needs, each with the file that shows it is installed.
missing_packages() {
    local -a missing=()
    [[ -x /usr/bin/rustc ]] && /usr/bin/rustc -V 2>/dev/null | grep -q . || missing+=(rustc-web)
    local libdir
    libdir="$(/usr/bin/rustc --target "$TARGET" --print target-libdir 2>/dev/null || true)"
    compgen -G "${libdir:-/nonexistent}/libstd-*.rlib" >/dev/null || missing+=(libstd-rust-web-dev:arm64)
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
    [[ -e /usr/aarch64-linux-gnu/lib/libc.a ]] || missing+=(libc6-dev-arm64-cross)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v cargo >/dev/null || missing+=(cargo-web)
    echo "${missing[@]}"
}

install_deps() {
    local missing
    missing="$(missing_packages)"
    [[ -z "$missing" ]] && return 0
    say "missing Debian packages: $missing"
    if [[ $EUID -ne 0 ]]; then
        die "not root, cannot install: $missing
  as root: dpkg --add-architecture arm64 && apt-get update && apt-get install -y $missing"
    fi
    command -v apt-get >/dev/null || die "apt-get not found: this script needs Debian 12 or later; missing: $missing"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64 || die "dpkg --add-architecture arm64 failed"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed (is a Debian mirror reachable?)"
    # shellcheck disable=SC2086 # word splitting wanted: one package per word
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        die "apt-get install failed for: $missing
  rustc-web and libstd-rust-web-dev:arm64 must have the same version (apt enforces it);
  they are in Debian 12 (bookworm) and later."
    missing="$(missing_packages)"
    [[ -z "$missing" ]] || die "still missing after installing: $missing"
}

check_toolchain() {
    local rustc_version need
    rustc_version="$(/usr/bin/rustc -V | awk '{print $2}')"
    need="$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
    if [[ -n "$need" ]] &&
        [[ "$(printf '%s\n%s\n' "$need" "$rustc_version" | sort -V | head -1)" != "$need" ]]; then
        die "/usr/bin/rustc is $rustc_version but hotline needs rust-version $need (Cargo.toml)"
    fi
}

setup_env() {
    export RUSTC=/usr/bin/rustc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
}

print_env() {
    setup_env
    local name
    for name in RUSTC CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER \
        CC_aarch64_unknown_linux_gnu AR_aarch64_unknown_linux_gnu; do
        printf 'export %s=%q\n' "$name" "${!name}"
    done
}

build() {
    cd "$ROOT"
    # Any linker warning fails the build of the shipped binary: with static glibc the linker
    # warns about functions that need glibc's shared libraries at run time (NSS: getaddrinfo,
    # getpwnam, ...), which the board's glibc may not match. hotline resolves no names; the
    # unit-test binaries do link std's getaddrinfo and getpwuid_r (unused), so `test` allows it.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS+=" -D linker-messages"
    cargo build --locked --release --target "$TARGET" "$@"
    local dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$dir" = /* ]] || dir="$ROOT/$dir"
    local binary="$dir/$TARGET/release/hotline"
    [[ -f "$binary" ]] || die "no binary at $binary"
    # Static: no program interpreter and no shared library needed.
    if aarch64-linux-gnu-readelf -lW "$binary" | grep -q 'INTERP' ||
        aarch64-linux-gnu-readelf -dW "$binary" | grep -q '(NEEDED)'; then
        die "$binary is not statically linked: $(aarch64-linux-gnu-readelf -dW "$binary" | grep NEEDED)"
    fi
    local description=""
    command -v file >/dev/null && description="$(file -b "$binary")"
    # The binary must start on the build host under emulation too.
    qemu-aarch64-static "$binary" --version >/dev/null || die "$binary does not run under qemu-aarch64-static"
    say "built $binary ($(stat -c %s "$binary") bytes)"
    [[ -n "$description" ]] && say "$description"
    echo "$binary"
}

# Lets the kernel run aarch64 programs through qemu (binfmt_misc), as a Pi would run them: a
# test that starts a child process (the test binary itself) needs it, because qemu-user only
# emulates the process it was started with.
register_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [[ -e $dir/qemu-aarch64 ]] && return 0
    [[ $EUID -eq 0 && -r $conf ]] || return 1
    if [[ ! -e $dir/register ]]; then
        mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
    fi
    [[ -e $dir/qemu-aarch64 ]] && return 0
    grep -v '^#' "$conf" >"$dir/register" 2>/dev/null || return 1
    [[ -e $dir/qemu-aarch64 ]]
}

# Tests that start a child aarch64 process; they cannot pass without binfmt_misc.
CHILD_PROCESS_TESTS=(store::tests::open_while_another_process_holds_it_is_locked)

# Tests of what qemu-user does not emulate: getsockopt(TCP_INFO) fails under it. They run
# natively in `cargo test`; a real board runs the code they test.
NOT_EMULATED_TESTS=(net::partial::tests::the_kernel_counts_segments_received)

run_tests() {
    cd "$ROOT"
    if (($# == 0)); then
        set -- --lib
    fi
    local skip=("${NOT_EMULATED_TESTS[@]}")
    if ! register_binfmt; then
        say "WARNING: qemu-aarch64 is not registered in binfmt_misc and cannot be (needs root"
        say "  and a mountable /proc/sys/fs/binfmt_misc): skipping the tests that start a child"
        say "  process, which cannot run without it: ${CHILD_PROCESS_TESTS[*]}"
        skip+=("${CHILD_PROCESS_TESTS[@]}")
    fi
    say "skipping what qemu-user does not emulate: ${NOT_EMULATED_TESTS[*]}"
    local arg has_separator=false
    for arg in "$@"; do [[ $arg == -- ]] && has_separator=true; done
    $has_separator || set -- "$@" --
    for arg in "${skip[@]}"; do set -- "$@" --skip "$arg"; done
    cargo test --locked --target "$TARGET" "$@"
}

command="${1:-}"
[[ -n "$command" ]] && shift
case "$command" in
build | test | deps) ;;
env)
    print_env
    exit 0
    ;;
*) usage ;;
esac

install_deps
check_toolchain
setup_env
case "$command" in
build) build "$@" ;;
test) run_tests "$@" ;;
deps) say "all tools present: $(/usr/bin/rustc -V), $(cargo -V)" ;;
esac
