#!/usr/bin/env bash
# Builds the hotline SD-card image for Raspberry Pi 3/4 (Debian bookworm arm64), as root,
# without loop mounts or containers.
#
#   image/build.sh            build the image: $HOTLINE_IMAGE_OUT/hotline-rpi-arm64.img
#   image/build.sh base       only build (or find in the cache) the base root filesystem
#   image/build.sh check      only check that every tool is installed
#
# Stages, each printed with its duration:
#   1. binary  the static aarch64 hotline binary (image/build-binary.sh build), and from it the
#              arm64 Debian package (cargo deb --no-build)
#   2. base    Debian packages (image/packages) installed by mmdebstrap, the initramfs built
#              once (image/base-customize.sh); cached under $HOTLINE_IMAGE_CACHE, keyed by the
#              hash of those two files, the suite and the mirror: about 25 minutes the first
#              time, reused afterwards
#   3. rootfs  a copy of the base, hotline installed from its package with dpkg, and the
#              board's files
#   4. image   FAT (RASPIFIRM) and ext4 (RASPIROOT) partitions made from directories
#              (mkfs.vfat + mcopy, mkfs.ext4 -d) and put in an MBR image with sfdisk
#
# Environment:
#   HOTLINE_IMAGE_CACHE  cache of base root filesystems (default /var/cache/hotline-image)
#   HOTLINE_IMAGE_OUT    where the image and the staged root filesystem go
#                        (default $HOTLINE_IMAGE_CACHE/out)
#   HOTLINE_IMAGE_MIRROR Debian mirror (default http://deb.debian.org/debian)
#   HOTLINE_BINARY       a hotline binary (static aarch64) to package instead of building one
#   HOTLINE_IMAGE_ZSTD   0: do not write the compressed copy (.img.zst) for download
#   CARGO_TARGET_DIR     used by the binary stage, as by cargo
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE=bookworm
TARGET=aarch64-unknown-linux-gnu
MIRROR="${HOTLINE_IMAGE_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${MIRROR%/debian}/debian-security"
CACHE="${HOTLINE_IMAGE_CACHE:-/var/cache/hotline-image}"
OUT="${HOTLINE_IMAGE_OUT:-$CACHE/out}"
IMAGE_NAME=hotline-rpi-arm64.img
# Partition sizes in MiB. The root partition is grown to the whole card on first boot.
FIRM_MIB=256
ROOT_SLACK_MIB=256

SCRIPT=build
# shellcheck source=image/lib.sh
. "$ROOT/image/lib.sh"

STAGE_NAME=""
STAGE_START=0
BUILD_START=$SECONDS
stage() {
    stage_done
    STAGE_NAME="$1"
    STAGE_START=$SECONDS
    say "[$STAGE_NAME] $2"
}
stage_done() {
    [[ -n "$STAGE_NAME" ]] && say "[$STAGE_NAME] done in $((SECONDS - STAGE_START)) s"
    STAGE_NAME=""
}

# Every tool the build runs, with the Debian package that provides it.
check_tools() {
    require_tools <<'TOOLS'
mmdebstrap mmdebstrap
arch-test arch-test
sfdisk fdisk
mkfs.vfat dosfstools
mcopy mtools
mkfs.ext4 e2fsprogs
qemu-aarch64-static qemu-user-static
systemctl systemd
unshare util-linux
zstd zstd
TOOLS
    command -v cargo-deb >/dev/null ||
        die "cargo-deb is missing (it makes the package): cargo install cargo-deb --locked --version 3.8.0"
    [[ $EUID -eq 0 ]] || die "run as root (mmdebstrap --mode=root and file ownership in the image)"
    register_binfmt || die "qemu-aarch64 is not registered in binfmt_misc, so arm64 programs
  cannot run in the root filesystem; install qemu-user-static (binfmt-support registers it) or
  mount binfmt_misc on /proc/sys/fs/binfmt_misc"
}

register_binfmt() {
    local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [[ -e $dir/qemu-aarch64 ]] && return 0
    [[ -r $conf ]] || return 1
    [[ -e $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || return 1
    [[ -e $dir/qemu-aarch64 ]] || grep -v '^#' "$conf" >"$dir/register" 2>/dev/null || return 1
    [[ -e $dir/qemu-aarch64 ]]
}

base_packages() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$ROOT/image/packages" | paste -sd, -
}

base_key() {
    {
        cat "$ROOT/image/packages" "$ROOT/image/base-customize.sh"
        echo "$SUITE $MIRROR $SECURITY_MIRROR"
    } | sha256sum | cut -c1-16
}

# Prints the path of the cached base root filesystem, building it if needed.
build_base() {
    local dir
    dir="$CACHE/base-$(base_key)"
    if [[ -d "$dir" ]]; then
        say "[base] cached: $dir"
        echo "$dir"
        return
    fi
    say "[base] not cached, building $dir (about 25 minutes: the package install runs under"
    say "       qemu-user, then the initramfs is built once)"
    mkdir -p "$CACHE"
    rm -rf "$dir.tmp"
    # update-initramfs is diverted during the install: every kernel and firmware package would
    # otherwise rebuild the initramfs, minutes each under emulation. base-customize.sh builds it
    # once at the end.
    # shellcheck disable=SC2016 # "$1" in a hook is the root directory, expanded by mmdebstrap
    mmdebstrap --mode=root --arch=arm64 --variant=minbase \
        --components="main non-free-firmware" \
        --include="$(base_packages)" \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
        --essential-hook='ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
        --customize-hook="copy-in $ROOT/image/base-customize.sh /tmp" \
        --customize-hook='chroot "$1" /tmp/base-customize.sh' \
        --customize-hook='rm "$1/tmp/base-customize.sh"' \
        "$SUITE" "$dir.tmp" \
        "deb $MIRROR $SUITE main non-free-firmware" \
        "deb $MIRROR $SUITE-updates main non-free-firmware" \
        "deb $SECURITY_MIRROR $SUITE-security main non-free-firmware" >&2 ||
        die "mmdebstrap failed (see its output above); is $MIRROR reachable?"
    mv "$dir.tmp" "$dir"
    echo "$dir"
}

# Prints the path of the static aarch64 binary: $HOTLINE_BINARY, or built now.
build_binary() {
    if [[ -n "${HOTLINE_BINARY:-}" ]]; then
        [[ -x "$HOTLINE_BINARY" ]] || die "HOTLINE_BINARY=$HOTLINE_BINARY is not an executable"
        echo "$HOTLINE_BINARY"
        return
    fi
    "$ROOT/image/build-binary.sh" build | tail -1
}

# Prints the path of the arm64 Debian package made from the binary $1 (`cargo deb --no-build`
# packages target/aarch64-unknown-linux-gnu/release/hotline, where the binary is put first).
build_package() {
    local binary="$1" dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    [[ "$dir" = /* ]] || dir="$ROOT/$dir"
    local expected="$dir/$TARGET/release/hotline"
    if [[ "$(realpath "$binary")" != "$(realpath -m "$expected")" ]]; then
        install -D -m 0755 "$binary" "$expected"
    fi
    mkdir -p "$OUT"
    (cd "$ROOT" && cargo deb --no-build --no-strip --target "$TARGET" --output "$OUT/") >&2 ||
        die "cargo deb failed (see above)"
    local package
    package="$(ls -t "$OUT"/hotline_*_arm64.deb | head -1)"
    [[ -f "$package" ]] || die "cargo deb wrote no hotline_*_arm64.deb in $OUT"
    echo "$package"
}

# Runs a command in the root filesystem $1 under qemu-user, with /proc mounted (raspi-firmware's
# hook reads it) in a mount namespace of its own, so that nothing stays mounted.
in_rootfs() {
    local dir="$1"
    shift
    unshare --mount --propagation private --fork \
        chroot "$dir" /bin/sh -c 'mount -t proc proc /proc && exec "$@"' sh "$@"
}

# Copies the cached base $1 to $2 and installs hotline from its package $3 and the board's files.
build_rootfs() {
    local base="$1" dir="$2" package="$3"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    cp -a --reflink=auto "$base" "$dir"

    # The appliance: units, first-boot scripts, network, journal, SSH, Fail2Ban settings.
    cp -r --preserve=mode "$ROOT/image/rootfs/." "$dir/"
    # hotline as the board will upgrade it (`apt install ./hotline_<version>_arm64.deb`):
    # /usr/bin/hotline, hotline.service enabled by its postinst (deb-systemd-helper), and
    # /etc/hotline/hotline.toml with no domain yet, so that the wizard starts at the first login.
    cp "$package" "$dir/tmp/hotline.deb"
    in_rootfs "$dir" dpkg --install /tmp/hotline.deb >&2 || die "dpkg --install $package failed"
    rm "$dir/tmp/hotline.deb"
    [[ -L "$dir/etc/systemd/system/multi-user.target.wants/hotline.service" ]] ||
        die "the package's postinst did not enable hotline.service"
    # The package ships the firewall as an example; on the appliance it is the firewall.
    install -m 0755 "$ROOT/config/nftables.conf" "$dir/etc/nftables.conf"

    # The board: firmware settings, and the owner's settings file on the FAT partition.
    local board="$ROOT/board/raspberrypi" file
    for file in raspi-firmware raspi-firmware-custom raspi-extra-cmdline; do
        install -m 0644 "$board/$file" "$dir/etc/default/$file"
    done
    install -m 0644 "$board/sysconf.txt" "$dir/boot/firmware/sysconf.txt"
    cat >"$dir/etc/fstab" <<'FSTAB'
# The SD card's partitions, by the labels Debian's Raspberry Pi images use.
LABEL=RASPIROOT  /               ext4  rw,noatime,errors=remount-ro  0  1
LABEL=RASPIFIRM  /boot/firmware  vfat  rw,noatime,nofail             0  2
FSTAB
    echo hotline >"$dir/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\thotline\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$dir/etc/hosts"

    systemctl --root="$dir" --quiet enable systemd-networkd.service systemd-resolved.service \
        systemd-timesyncd.service nftables.service ssh.service fail2ban.service \
        hotline-grow-root.service hotline-ssh-keys.service hotline-sysconf.service

    # Each board makes its own identity on first boot: machine-id (empty, so systemd makes
    # one), SSH host keys (hotline-ssh-keys.service), random seed.
    : >"$dir/etc/machine-id"
    rm -f "$dir"/etc/ssh/ssh_host_*_key "$dir"/etc/ssh/ssh_host_*_key.pub \
        "$dir/var/lib/systemd/random-seed" "$dir/var/lib/dbus/machine-id"
    rm -rf "$dir/var/log/journal"

    # config.txt and cmdline.txt from the board's settings, by raspi-firmware's own hook, as a
    # kernel update on the board would write them.
    in_rootfs "$dir" env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware >&2
    grep -q 'LABEL=RASPIROOT' "$dir/boot/firmware/cmdline.txt" ||
        die "cmdline.txt does not name root=LABEL=RASPIROOT: $(cat "$dir/boot/firmware/cmdline.txt")"
}

# Makes the SD-card image $3 from the root filesystem $1; the FAT partition's files are
# $1/boot/firmware. Works on files only: no loop device, no mount.
assemble_image() {
    local dir="$1" work="$2" image="$3"
    local firm_img="$work/firm.img" root_img="$work/root.img" firmware="$work/firmware"
    rm -rf "$firmware" "$firm_img" "$root_img"
    mkdir -p "$work"
    # The FAT files leave the ext4 tree, whose /boot/firmware stays an empty mount point.
    mv "$dir/boot/firmware" "$firmware"
    mkdir -m 0755 "$dir/boot/firmware"

    mkfs.vfat -F 32 -n RASPIFIRM -C "$firm_img" $((FIRM_MIB * 1024)) >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "$firm_img" "$firmware"/* ::

    # Used space, plus room for the file system's own tables and a margin for the first boot,
    # before hotline-grow-root.service gives it the whole card.
    local used_mib root_mib
    used_mib=$(du -s --block-size=1M "$dir" | cut -f1)
    root_mib=$((used_mib * 115 / 100 + ROOT_SLACK_MIB))
    mkfs.ext4 -q -F -L RASPIROOT -d "$dir" "$root_img" "${root_mib}M" >/dev/null ||
        die "mkfs.ext4 -d failed"

    # 4 MiB before the first partition, as Debian's raspi images do (SD erase block alignment).
    local start=8192 firm_sectors=$((FIRM_MIB * 2048)) root_sectors=$((root_mib * 2048))
    rm -f "$image"
    truncate -s $(((start + firm_sectors + root_sectors) * 512)) "$image"
    sfdisk --quiet "$image" <<SFDISK
label: dos
label-id: 0x$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
unit: sectors
start=$start, size=$firm_sectors, type=c
start=$((start + firm_sectors)), size=$root_sectors, type=83
SFDISK
    dd if="$firm_img" of="$image" bs=512 seek=$start conv=notrunc,sparse status=none
    dd if="$root_img" of="$image" bs=512 seek=$((start + firm_sectors)) conv=notrunc,sparse \
        status=none
    rm -f "$firm_img" "$root_img"
    mv "$firmware"/* "$dir/boot/firmware/"
    rmdir "$firmware" "$work"
}

command="${1:-image}"
case "$command" in
image | base | check) ;;
*) usage ;;
esac

check_tools
[[ "$command" == check ]] && { say "all tools present"; exit 0; }

stage base "base root filesystem"
BASE="$(build_base)"
stage_done
[[ "$command" == base ]] && exit 0

stage binary "static aarch64 hotline (image/build-binary.sh build) and its Debian package"
BINARY="$(build_binary)"
say "[binary] $BINARY: $(file -b "$BINARY" 2>/dev/null || stat -c '%s bytes' "$BINARY")"
PACKAGE="$(build_package "$BINARY")"
say "[binary] $PACKAGE ($(stat -c %s "$PACKAGE") bytes)"

stage rootfs "copy of the base with hotline, its configuration and the board's files"
ROOTFS="$OUT/rootfs"
build_rootfs "$BASE" "$ROOTFS" "$PACKAGE"

stage image "FAT and ext4 partitions from directories, MBR with sfdisk"
IMAGE="$OUT/$IMAGE_NAME"
assemble_image "$ROOTFS" "$OUT/work" "$IMAGE"

if [[ "${HOTLINE_IMAGE_ZSTD:-1}" != 0 ]]; then
    stage compress "$IMAGE_NAME.zst, for download (Raspberry Pi Imager and bmaptool read it)"
    zstd -q -f -T0 -10 "$IMAGE" -o "$IMAGE.zst"
    say "[compress] $IMAGE.zst ($(du -h "$IMAGE.zst" | cut -f1))"
fi
stage_done

say "image: $IMAGE ($(du -h --apparent-size "$IMAGE" | cut -f1) apparent, $(du -h "$IMAGE" | cut -f1) on disk)"
say "built in $((SECONDS - BUILD_START)) s; flash it with:"
say "  dd if=$IMAGE of=/dev/sdX bs=4M conv=fsync status=progress"
