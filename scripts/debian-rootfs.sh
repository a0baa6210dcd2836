#!/usr/bin/env bash
# Print the path of a tarball of a minimal Debian bookworm root file system, made with debootstrap
# and cached under /var/cache/surblocage-test/, one a day (a rerun the same day takes seconds).
#   scripts/debian-rootfs.sh            minbase: what a fresh Raspberry Pi OS Lite has, roughly
#   scripts/debian-rootfs.sh --python   minbase + python3 python3-venv (a base for container images),
#                                       trusting the host's extra CAs too
#   scripts/debian-rootfs.sh --systemd  --python + systemd, to boot with systemd-nspawn
# Needs root and the debootstrap package. Progress on stderr; only the path on stdout.
set -euo pipefail

CACHE=${SURBLOCAGE_TEST_CACHE:-/var/cache/surblocage-test}
MIRROR=${SURBLOCAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
flavour=minbase
case ${1:-} in
    "") ;;
    --python) flavour=python ;;
    --systemd) flavour=systemd ;;
    -h | --help) sed -n '2,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "debian-rootfs: unknown argument: $1" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "debian-rootfs: needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "debian-rootfs: needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }

day=$(date -u +%Y%m%d)
tarball=$CACHE/$SUITE-$flavour-$day.tar
mkdir -p "$CACHE"
exec 9>"$CACHE/rootfs-$flavour.lock"
flock 9
if [ -s "$tarball" ]; then echo "$tarball"; exit 0; fi

work=$(mktemp -d "$CACHE/build.XXXXXX")
cleanup() {
    for m in proc sys dev; do umount -l "$work/root/$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
if [ "$flavour" = minbase ]; then
    echo "debian-rootfs: debootstrap $SUITE (minbase) from $MIRROR: a few minutes" >&2
    debootstrap --variant=minbase "$SUITE" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
else
    if [ "$flavour" = python ]; then base=$("$0"); packages="python3 python3-venv ca-certificates"; fi
    if [ "$flavour" = systemd ]; then base=$("$0" --python); packages="systemd systemd-sysv dbus"; fi
    mkdir "$work/root"
    tar -C "$work/root" -xf "$base"
    echo "debian-rootfs: adding $packages" >&2
    cp /etc/resolv.conf "$work/root/etc/resolv.conf"
    # the host's own CA certificates (a TLS-intercepting egress proxy, where there is one), so that
    # pip in an image built on this root reaches PyPI as the host does; ca-certificates adds them
    mkdir -p "$work/root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$work/root/usr/local/share/ca-certificates/" 2>/dev/null || true
    mount -t proc proc "$work/root/proc"
    chroot "$work/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null && apt-get clean" >&2
    umount "$work/root/proc"
fi
rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/archives/"*.deb
tar -C "$work/root" --numeric-owner -cf "$tarball.part" .
mv "$tarball.part" "$tarball"
# yesterday's tarballs of this flavour
find "$CACHE" -maxdepth 1 -name "$SUITE-$flavour-*.tar" ! -name "${tarball##*/}" -delete
echo "$tarball"
