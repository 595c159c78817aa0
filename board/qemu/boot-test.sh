#!/usr/bin/env bash
# Boots the appliance image under emulation and checks it as its owner would use it: SSH in with
# the key from sysconf.txt, run the wizard, register a phone over IPv6.
#
#   board/qemu/boot-test.sh [IMAGE]    default: $HOTLINE_IMAGE_OUT/hotline-rpi-arm64.img
#
# On a copy of the image (grown to 4 GiB, as a larger SD card would be), with sysconf.txt holding
# a key made for the test: qemu-system-aarch64 -M virt boots the image's own kernel and initrd
# (copied out of its FAT partition) and root file system. The guest's network is a tap device in
# a network namespace made for the test, where radvd advertises a ULA prefix: the guest takes its
# address by SLAAC as on a home network. The test waits for hotline.service to be active (the
# serial console), logs in over SSH (IPv6), checks the first-boot work, runs `hotline setup
# --answers board/qemu/answers.toml`, registers extension 1000 with SIPp (UDP, Digest MD5), and
# logs in to the owner's pages over HTTPS (curl, the board's certificate checked): a wrong
# password refused, the right one with the login form's CSRF token, then the overview with the
# session cookie, which must show the version and the phone online. Then the SD-death drill,
# timed: a backup taken off the board over SSH, a fresh copy of the image booted as a new card,
# the backup restored by the wizard, and the same phone registered with its old password; then
# the owner logs in to the new card with the old password, which serves the old certificate.
# Minutes under emulation: run on demand, not in CI. Run as root.
#
# Logs: $HOTLINE_BOOT_TEST_LOGS/<date>/ (default $HOTLINE_IMAGE_CACHE/boot-test), with
# boot-test.log (this script's output), console-old.log and console-new.log (the serial
# consoles of the two boots) and SIPp's traces.
#
# Environment: HOTLINE_IMAGE_CACHE, HOTLINE_IMAGE_OUT as for image/build.sh;
# HOTLINE_BOOT_TIMEOUT seconds to wait for hotline.service (default 900).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${HOTLINE_IMAGE_CACHE:-/var/cache/hotline-image}"
IMAGE="${1:-${HOTLINE_IMAGE_OUT:-$CACHE/out}/hotline-rpi-arm64.img}"
LOGS="${HOTLINE_BOOT_TEST_LOGS:-$CACHE/boot-test}/$(date +%Y%m%d-%H%M%S)"
BOOT_TIMEOUT="${HOTLINE_BOOT_TIMEOUT:-900}"
ANSWERS="$ROOT/board/qemu/answers.toml"
SCENARIO="$ROOT/tests/sipp/register_auth.xml"

NS="hotline-boot-$$"
PREFIX=fd00:5ec:1:1
HOST_ADDRESS="$PREFIX::1"
MAC=52:54:00:12:34:56
# SLAAC with the EUI-64 interface identifier of $MAC (systemd-networkd's default).
GUEST_ADDRESS="$PREFIX:5054:ff:fe12:3456"
DOMAIN="$(sed -n 's/^domain *= *"\(.*\)"/\1/p' "$ANSWERS")"
OWNER_PASSWORD="$(sed -n 's/^owner_password *= *"\(.*\)"/\1/p' "$ANSWERS")"
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"

SCRIPT=boot-test
# shellcheck source=image/lib.sh
. "$ROOT/image/lib.sh"
# A failure of the test, not of the script: say so in the words the log is read for.
die() {
    echo "boot-test: FAILED: $*" >&2
    exit 1
}

case "${1:-}" in
-h | --help) usage ;;
esac

check_tools() {
    require_tools <<'TOOLS'
qemu-system-aarch64 qemu-system-arm
mcopy mtools
sfdisk fdisk
ssh openssh-client
curl curl
sipp sip-tester
radvd radvd
ip iproute2
TOOLS
    [[ $EUID -eq 0 ]] || die "run as root (network namespace, tap device)"
    [[ -c /dev/net/tun ]] || die "/dev/net/tun is missing: the tap device needs the tun module"
    [[ -f "$IMAGE" ]] || die "no image at $IMAGE: build it with image/build.sh"
}

T0=$SECONDS
log() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*"; }

QEMU_PID=""
RADVD_PID=""
# The board being tested: `old`, then `new` (the new card of the SD-death drill).
BOARD=old
# Seconds from the kernel's start to hotline.service active, on the last board booted.
BOOT_HOTLINE=""
WORK=""
cleanup() {
    if [[ -n "$QEMU_PID" ]]; then kill "$QEMU_PID" 2>/dev/null || true; fi
    if [[ -n "$RADVD_PID" ]]; then kill "$RADVD_PID" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { ip netns exec "$NS" "$@"; }

# Start sector of partition $2 of the disk image $1.
partition_start() {
    sfdisk -d "$1" | sed -n "s|^$1$2 *: *start= *\([0-9]*\),.*|\1|p"
}

# Runs a command in the guest over SSH (one connection, shared: the guest's firewall allows only
# a few new ones a minute); `guest -tt …` gives it a terminal.
guest() {
    local -a tty=()
    [[ "$1" == -tt ]] && { tty=(-tt); shift; }
    in_ns ssh -i "$WORK/id_ed25519" -o BatchMode=yes -o ConnectTimeout=15 \
        -o UserKnownHostsFile="$WORK/known_hosts-$BOARD" -o StrictHostKeyChecking=accept-new \
        -o ControlMaster=auto -o ControlPath="$WORK/ssh-%C" -o ControlPersist=900 \
        "${tty[@]}" "root@$GUEST_ADDRESS" "$@"
}

# Waits for a line matching $1 on the serial console; fails on a line matching $2 (extended
# regular expressions).
wait_console() {
    local want="$1" fail="$2" deadline=$((SECONDS + BOOT_TIMEOUT))
    local console="$LOGS/console-$BOARD.log"
    until grep -Eq -- "$want" "$console" 2>/dev/null; do
        grep -Eq -- "$fail" "$console" 2>/dev/null &&
            die "the console says: $(grep -Em1 -- "$fail" "$console")"
        kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited; see $console"
        ((SECONDS < deadline)) || die "no \"$want\" on the console after $BOOT_TIMEOUT s"
        sleep 1
    done
}

# A fresh copy of the image, as a new SD card for the board named $BOARD.
prepare_disk() {
    local disk="$WORK/disk-$BOARD.img" firm
    log "copying $IMAGE and growing the copy to 4 GiB ($BOARD card)"
    cp --sparse=always "$IMAGE" "$disk"
    firm="$disk@@$(($(partition_start "$IMAGE" 1) * 512))"
    truncate -s 4G "$disk"
    [[ -f "$WORK/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C boot-test -f "$WORK/id_ed25519"
    {
        echo "root_authorized_key=$(cat "$WORK/id_ed25519.pub")"
        echo "hostname=pbx"
    } >"$WORK/sysconf.txt"
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$firm" "$WORK/sysconf.txt" ::sysconf.txt
    # The kernel and initrd that config.txt names, and the Pi's kernel command line.
    mkdir -p "$WORK/boot"
    MTOOLS_SKIP_CHECK=1 mcopy -i "$firm" ::config.txt ::cmdline.txt "$WORK/boot/"
    local kernel initrd
    kernel="$(sed -n 's/^kernel=//p' "$WORK/boot/config.txt")"
    initrd="$(sed -n 's/^initramfs *//p' "$WORK/boot/config.txt")"
    [[ -n "$kernel" && -n "$initrd" ]] || die "config.txt names no kernel= or initramfs"
    MTOOLS_SKIP_CHECK=1 mcopy -i "$firm" "::$kernel" "$WORK/boot/vmlinuz"
    MTOOLS_SKIP_CHECK=1 mcopy -i "$firm" "::$initrd" "$WORK/boot/initrd.img"
    log "config.txt: kernel=$kernel, initramfs $initrd"
    log "cmdline.txt: $(cat "$WORK/boot/cmdline.txt")"
}

start_network() {
    ip netns add "$NS"
    in_ns ip link set lo up
    in_ns ip tuntap add dev tap0 mode tap
    in_ns ip link set tap0 up
    in_ns ip -6 addr add "$HOST_ADDRESS/64" dev tap0 nodad
    # radvd wants a router; the namespace is one, on its own.
    in_ns sysctl -qw net.ipv6.conf.all.forwarding=1
    cat >"$WORK/radvd.conf" <<RADVD
interface tap0 {
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    prefix $PREFIX::/64 { AdvOnLink on; AdvAutonomous on; };
};
RADVD
    ip netns exec "$NS" radvd -n -C "$WORK/radvd.conf" -p "$WORK/radvd.pid" -m logfile \
        -l "$LOGS/radvd.log" &
    RADVD_PID=$!
}

start_qemu() {
    # The Pi's kernel command line (root=LABEL=RASPIROOT…), with the serial console of virt.
    local append
    append="console=ttyAMA0 $(sed -e 's/console=[^ ]*//g' -e 's/  */ /g' -e 's/^ //' \
        "$WORK/boot/cmdline.txt")"
    log "starting qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024: $append"
    T_BOOT=$SECONDS
    ip netns exec "$NS" qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 \
        -kernel "$WORK/boot/vmlinuz" -initrd "$WORK/boot/initrd.img" -append "$append" \
        -drive file="$WORK/disk-$BOARD.img",format=raw,if=none,id=disk \
        -device virtio-blk-pci,drive=disk \
        -netdev tap,id=net,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=net,mac=$MAC,romfile= \
        -display none -monitor none -serial file:"$LOGS/console-$BOARD.log" -no-reboot &
    QEMU_PID=$!
}

register() {
    local password="$1" dir="$LOGS/sipp-$BOARD"
    mkdir -p "$dir"
    printf 'SEQUENTIAL\n1000;%s\n' "$password" >"$dir/users.csv"
    log "SIPp: REGISTER 1000@$DOMAIN to [$GUEST_ADDRESS]:5060 over UDP, from [$HOST_ADDRESS]"
    (cd "$dir" && in_ns sipp "[$GUEST_ADDRESS]:5060" -sf "$SCENARIO" -inf users.csv -m 1 \
        -key domain "$DOMAIN" -key expires 600 -auth_uri "$DOMAIN" \
        -i "$HOST_ADDRESS" -p 5070 -nostdin -timeout 60 -timeout_error \
        -trace_err -trace_msg -trace_stat) >"$dir/sipp.out" 2>&1 || {
        cat "$dir/sipp.out" "$dir"/*_errors.log 2>/dev/null
        die "SIPp could not register (traces in $dir)"
    }
    grep -E 'Successful call|Failed call' "$dir/sipp.out" | sed 's/^/    /' | head -4
}

# An HTTPS request to the owner's pages from the namespace, to $DOMAIN at the guest's address,
# trusting only the board's own certificate, with a cookie jar. Prints "<status> <seconds>".
web() {
    in_ns curl --silent --show-error --max-time 60 --cacert "$WORK/cert-$BOARD.pem" \
        --resolve "$DOMAIN:443:[$GUEST_ADDRESS]" --cookie "$WORK/cookies-$BOARD" \
        --cookie-jar "$WORK/cookies-$BOARD" --write-out '%{http_code} %{time_total}' "$@"
}

# The login form's CSRF token in the page $1.
csrf_of() {
    sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$1" | head -1
}

# Logs in to the owner's pages as their owner would in a browser, over IPv6: the login page, a
# wrong password (refused), the owner's password with the form's CSRF token, and the overview
# the login leads to, with the session cookie. The overview must show the version and
# $1 phones online.
dashboard() {
    local phones="$1" dir="$LOGS/dashboard-$BOARD" url="https://$DOMAIN" answer csrf location
    mkdir -p "$dir"
    : >"$WORK/cookies-$BOARD"
    guest cat /var/lib/hotline/tls/cert.pem >"$WORK/cert-$BOARD.pem"
    guest cat /etc/nftables.d/hotline-web.nft >"$dir/hotline-web.nft" ||
        die "setup did not open the HTTPS port: no /etc/nftables.d/hotline-web.nft"
    log "owner's pages: the firewall has $(grep -v '^#' "$dir/hotline-web.nft")" \
        "(/etc/nftables.d/hotline-web.nft, written by setup)"

    answer="$(web --output "$dir/login.html" "$url/login")" || die "GET $url/login: curl failed"
    [[ "${answer% *}" == 200 ]] || die "GET $url/login answered ${answer% *}"
    csrf="$(csrf_of "$dir/login.html")"
    [[ -n "$csrf" ]] || die "the login page has no CSRF token"
    log "owner's pages: GET $url/login from [$HOST_ADDRESS] to [$GUEST_ADDRESS]:443, the" \
        "board's certificate checked: ${answer% *} in ${answer#* } s, with a CSRF token"

    answer="$(web --output "$dir/wrong.html" --data-urlencode "csrf=$csrf" \
        --data-urlencode "password=not the owner's password" "$url/login")" ||
        die "POST $url/login: curl failed"
    [[ "${answer% *}" == 403 ]] && grep -q 'Wrong password' "$dir/wrong.html" ||
        die "a wrong password was not refused: ${answer% *}, $(cat "$dir/wrong.html")"
    log "owner's pages: POST /login with a wrong password: ${answer% *}, \"Wrong password.\"," \
        "in ${answer#* } s"

    answer="$(web --output "$dir/login-again.html" "$url/login")" || die "GET $url/login: curl failed"
    csrf="$(csrf_of "$dir/login-again.html")"
    answer="$(web --output "$dir/login-ok.html" --dump-header "$dir/login-ok.headers" \
        --data-urlencode "csrf=$csrf" --data-urlencode "password=$OWNER_PASSWORD" "$url/login")" ||
        die "POST $url/login: curl failed"
    [[ "${answer% *}" == 303 ]] && grep -qi '^set-cookie: hotline_session=' "$dir/login-ok.headers" ||
        die "the owner's password did not log in: ${answer% *}, $(cat "$dir/login-ok.headers")"
    location="$(sed -n 's/^[Ll]ocation: *\([^[:space:]]*\).*/\1/p' "$dir/login-ok.headers")"
    log "owner's pages: POST /login with the owner's password and the CSRF token:" \
        "${answer% *} to $location with a session cookie, in ${answer#* } s (argon2id on the board)"

    answer="$(web --output "$dir/overview.html" "$url$location")" || die "GET $url$location: curl failed"
    [[ "${answer% *}" == 200 ]] || die "GET $url$location with the session answered ${answer% *}"
    grep -q "<b>$phones</b>phones online" "$dir/overview.html" ||
        die "the overview does not show $phones phones online: $(cat "$dir/overview.html")"
    grep -q "<th>Version</th><td>$VERSION</td>" "$dir/overview.html" ||
        die "the overview does not show version $VERSION"
    log "owner's pages: GET $location with the session: ${answer% *} in ${answer#* } s," \
        "\"$phones phones online\", version $VERSION"
}

# Boots a fresh copy of the image as the board $BOARD and waits for SSH and hotline.service.
boot_board() {
    prepare_disk
    start_qemu

    # systemd stops writing unit status to the serial console once a getty runs there, so the
    # console shows the login prompt and the rest is asked over SSH.
    wait_console 'login:' 'Kernel panic|Give root password for maintenance'
    log "login prompt on the serial console $((SECONDS - T_BOOT)) s after qemu started"
    # The appliance's firewall lets in a few new SSH connections a minute per /64: try every 10 s.
    local deadline=$((SECONDS + BOOT_TIMEOUT))
    until guest true 2>"$WORK/ssh.err"; do
        ((SECONDS < deadline)) || die "no SSH login at [$GUEST_ADDRESS]: $(cat "$WORK/ssh.err")"
        kill -0 "$QEMU_PID" 2>/dev/null || die "qemu exited; see $LOGS/console-$BOARD.log"
        sleep 10
    done
    log "SSH login as root at [$GUEST_ADDRESS] (SLAAC) with the key from sysconf.txt," \
        "$((SECONDS - T_BOOT)) s after qemu started"
    local state
    until state="$(guest systemctl is-active hotline.service)"; do
        [[ "$state" == failed ]] && die "hotline.service failed: $(guest systemctl status hotline.service)"
        ((SECONDS < deadline)) || die "hotline.service is still $state"
        sleep 2
    done
    local active_us
    active_us="$(guest systemctl show -P ActiveEnterTimestampMonotonic hotline.service)"
    BOOT_HOTLINE="$(awk -v us="$active_us" 'BEGIN { printf "%.1f", us / 1e6 }')"
    log "hotline.service active $BOOT_HOTLINE s after the kernel started" \
        "(systemd's ActiveEnterTimestampMonotonic; QEMU starts the kernel within a second)"
}

power_off() {
    guest systemctl poweroff || true
    local deadline=$((SECONDS + 120))
    while kill -0 "$QEMU_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 1; done
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=""
    # The SSH connection shared with that board is gone with it.
    rm -f "$WORK"/ssh-*
}

main() {
    check_tools
    mkdir -p "$LOGS"
    exec > >(tee "$LOGS/boot-test.log") 2>&1
    WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/hotline-boot-test.XXXXXX")"
    log "image $IMAGE ($(stat -c %s "$IMAGE") bytes), logs in $LOGS"
    start_network
    boot_board
    local boot_hotline="$BOOT_HOTLINE"

    log "first boot, as seen in the guest:"
    # shellcheck disable=SC2016 # expanded in the guest
    guest 'set -e
        echo "hostname: $(hostname)"
        echo "hotline.service: $(systemctl is-active hotline.service)"
        echo "failed units: $(systemctl list-units --failed --plain --no-legend | wc -l)"
        systemctl list-units --failed --plain --no-legend
        echo "machine-id: $(cat /etc/machine-id) (empty in the image)"
        echo "root: $(findmnt -no SOURCE,SIZE,FSTYPE /) on a $(lsblk -dno SIZE /dev/vda) disk"
        echo "boot: $(findmnt -no SOURCE,FSTYPE /boot/firmware)"
        echo "journal: $(journalctl --header | sed -n "s/^File path: //p" | head -1)"
        ip -6 -brief addr show scope global
        ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
        systemd-analyze || true' | sed 's/^/    /'
    [[ "$(guest systemctl is-active hotline.service)" == active ]] || die "hotline.service is not active"
    [[ -n "$(guest cat /etc/machine-id)" ]] || die "no machine-id was made at first boot"
    # shellcheck disable=SC2016 # expanded in the guest
    guest 'test "$(lsblk -bno SIZE /dev/vda2)" -gt 3000000000' || die "the root partition was not grown"
    guest 'test -d /run/log/journal && ! test -d /var/log/journal' || die "the journal is not in RAM"

    # A login on a terminal starts the wizard until setup is complete; here nobody answers, and
    # the login ends after 20 s.
    guest -tt timeout 20 bash -l -c true </dev/null >"$LOGS/login-before.out" 2>&1 || true
    grep -q 'starting the wizard' "$LOGS/login-before.out" ||
        die "a login before setup did not start the wizard: $(cat "$LOGS/login-before.out")"
    log "a login on a terminal starts the wizard: $(grep -m1 'starting the wizard' "$LOGS/login-before.out" | tr -d '\r')"

    log "hotline setup --answers board/qemu/answers.toml, over SSH:"
    guest 'cat >/root/answers.toml' <"$ANSWERS"
    guest hotline --config /etc/hotline/hotline.toml setup --answers /root/answers.toml \
        >"$LOGS/setup.out" 2>&1 || { cat "$LOGS/setup.out"; die "hotline setup failed"; }
    sed 's/^/    /' "$LOGS/setup.out"
    local password
    password="$(sed -n 's/^ *password: *\([0-9]*\)$/\1/p' "$LOGS/setup.out" | head -1)"
    [[ -n "$password" ]] || die "setup printed no password for extension 1000"
    [[ "$(guest systemctl is-active hotline.service)" == active ]] || die "hotline.service is not active after setup"

    guest -tt timeout 20 bash -l -c true </dev/null >"$LOGS/login-after.out" 2>&1 || true
    ! grep -q 'starting the wizard' "$LOGS/login-after.out" ||
        die "a login after setup started the wizard again"
    log "a login after setup does not start the wizard"

    register "$password"
    log "hotline's log of the registration:"
    guest journalctl -u hotline.service -o verbose --no-pager MESSAGE=registered |
        grep -v '^ *_' | sed 's/^/    /'
    dashboard 1

    # The SD-death drill: the owner's backup goes off the board (as scp would copy it), the card
    # dies, a new card is flashed with the same image, the wizard restores the backup, and the
    # phone registers again with the password it has.
    local drill=$SECONDS
    log "drill: hotline backup on the old board, copied off it over SSH"
    guest hotline --config /etc/hotline/hotline.toml backup /root/hotline.backup \
        >"$LOGS/backup.out" 2>&1 || { cat "$LOGS/backup.out"; die "hotline backup failed"; }
    sed 's/^/    /' "$LOGS/backup.out"
    guest cat /root/hotline.backup >"$WORK/hotline.backup"
    power_off
    log "drill: the old card is gone; booting a fresh copy of the image as the new card"
    BOARD=new
    boot_board
    guest 'cat >/root/hotline.backup' <"$WORK/hotline.backup"
    echo 'restore = "/root/hotline.backup"' | guest 'cat >/root/restore.toml'
    guest hotline --config /etc/hotline/hotline.toml setup --answers /root/restore.toml \
        >"$LOGS/restore.out" 2>&1 || { cat "$LOGS/restore.out"; die "the restore failed"; }
    sed 's/^/    /' "$LOGS/restore.out"
    [[ "$(guest systemctl is-active hotline.service)" == active ]] ||
        die "hotline.service is not active after the restore"
    register "$password"
    local drill_time=$((SECONDS - drill))
    log "drill: 1000 registered on the new card with its old password, $drill_time s after the backup"
    dashboard 1
    cmp -s "$WORK/cert-old.pem" "$WORK/cert-new.pem" ||
        die "the new card serves another certificate than the old card"
    log "drill: the new card serves the old card's certificate, and the owner's old password" \
        "logs in to its owner's pages"
    power_off
    log "PASSED: hotline.service active $boot_hotline s after boot, setup done, 1000 registered" \
        "over IPv6, the owner logged in to the owner's pages over IPv6; SD-death drill (backup," \
        "new card, restore, register) in $drill_time s, then the owner's old password and the" \
        "old certificate on the new card"
}

main
