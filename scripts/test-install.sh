#!/usr/bin/env bash
# Test deploy/install-probe.sh in a fresh Debian bookworm chroot (scripts/debian-rootfs.sh): build
# this checkout's wheel on the host, install it in the chroot with the script, then check the
# command, the configuration, the unit, that the collector's stack is absent, a measurement against
# a DNS server on the host's loopback (the chroot shares the host's network), a second run
# (idempotent, piped into `sh -s` as curl does), bad usage, and --uninstall. pip and apt in the
# chroot reach PyPI and Debian.
# Needs root. Each check prints "test-install: ok: ..."; the first failure stops with status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
COLLECTOR=https://collector.example.org
NAME=install-test.surblocage.test
ANSWER=127.0.0.9 # what the test's DNS server answers: only it answers that
CACHE=${SURBLOCAGE_TEST_CACHE:-/var/cache/surblocage-test}

[ "$(id -u)" = 0 ] || { echo "test-install: needs root (chroot)" >&2; exit 2; }
say() { echo "test-install: $*" >&2; }
ok() { say "ok: $*"; }
fail() { say "FAIL: $*"; exit 1; }

root=$(mktemp -d /var/tmp/surblocage-install.XXXXXX)
dns_pid=""
cleanup() {
    [ -z "$dns_pid" ] || kill "$dns_pid" 2>/dev/null || true
    for m in var/cache/apt/archives dev/pts dev proc sys; do
        umount -l "$root/$m" 2>/dev/null || true
    done
    # never rm through a bind mount still in place (the cache, /dev)
    if grep -q " $root/" /proc/mounts; then
        say "left $root: something is still mounted there"
    else
        rm -rf "$root"
    fi
}
trap cleanup EXIT

tarball=$(bash scripts/debian-rootfs.sh)
tar -C "$root" -xf "$tarball"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# downloaded .debs survive the run, so that a rerun downloads none again
mkdir -p "$CACHE/apt-archives/partial"
mount --bind "$CACHE/apt-archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# the host's own CA certificates (a TLS-intercepting egress proxy, where there is one): the
# ca-certificates package adds them to the chroot's bundle when the install script installs it
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true

say "building the wheel"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$root/tmp" . >"$root/tmp/wheel.log" 2>&1 \
    || { cat "$root/tmp/wheel.log" >&2; fail "pip wheel"; }
wheel=$(cd "$root/tmp" && ls surblocage-*.whl)
version=$(echo "$wheel" | cut -d- -f2)
cp deploy/install-probe.sh "$root/tmp/install-probe.sh"

# a clean environment, as on a volunteer's machine (PIP_CERT: the bundle the CA above goes into)
in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"
}

say "installing $wheel with install-probe.sh"
in_root sh /tmp/install-probe.sh --collector "$COLLECTOR" --source "/tmp/$wheel" 2>"$root/tmp/first.err" \
    || { cat "$root/tmp/first.err" >&2; fail "install-probe.sh failed"; }
cat "$root/tmp/first.err" >&2
grep -q "systemd is not running here" "$root/tmp/first.err" || fail "no line saying systemd was skipped"
ok "install-probe.sh installed $wheel and said it skipped systemd"

cmp -s probe/data/surblocage-probe.service "$root/etc/systemd/system/surblocage-probe.service" \
    || fail "/etc/systemd/system/surblocage-probe.service is missing or not the package's unit"
ok "the unit is in /etc/systemd/system"
grep -qx "  url: \"$COLLECTOR\"" "$root/etc/surblocage/probe.yaml" || fail "probe.yaml has no collector.url"
[ "$(stat -c %a "$root/etc/surblocage/probe.yaml")" = 644 ] || fail "probe.yaml is not mode 644"
ok "/etc/surblocage/probe.yaml names the collector, mode 644"

got=$(in_root surblocage-probe --version)
[ "$got" = "surblocage-probe $version" ] || fail "--version said '$got', not 'surblocage-probe $version'"
ok "surblocage-probe --version: $got"
in_root surblocage-probe check --help | grep -q -- "--no-control" || fail "check --help"
ok "surblocage-probe check --help"
in_root surblocage-probe check --config /etc/surblocage/probe.yaml --help >/dev/null || fail "check with the written config"
for module in sqlalchemy psycopg pyarrow scapy alembic; do
    if in_root /opt/surblocage/venv/bin/python -c "import $module" 2>/dev/null; then
        fail "$module is installed: the probe alone should not have it"
    fi
done
ok "the probe alone: no sqlalchemy, psycopg, pyarrow, scapy, alembic"

# a DNS server on the host's loopback, answering $ANSWER for every name
"$PY" -c '
import signal
from tests.support.dns_server import Zone, serving_in_thread
with serving_in_thread(default=Zone(addresses=["'"$ANSWER"'"])) as server:
    print(server.port, flush=True)
    signal.sigwait({signal.SIGTERM})
' >"$root/tmp/dns.port" &
dns_pid=$!
for _ in $(seq 100); do [ -s "$root/tmp/dns.port" ] && break; sleep 0.1; done
port=$(cat "$root/tmp/dns.port")
[ -n "$port" ] || fail "the test's DNS server did not start"
set +e
in_root surblocage-probe check --no-control --quiet --json --resolver "127.0.0.1:$port" "$NAME" >"$root/tmp/check.json"
status=$?
set -e
[ "$status" -le 1 ] || fail "check exited $status: $(cat "$root/tmp/check.json")"
"$PY" - "$root/tmp/check.json" "$ANSWER" "$port" <<'EOF' || fail "check's record: $(cat "$root/tmp/check.json")"
import json, sys
record = json.loads(open(sys.argv[1]).read())
answered = [d for d in record["dns"] if sys.argv[2] in d["answers"]]
assert answered, record["dns"]
assert {d["resolver"] for d in answered} == {f"127.0.0.1:{sys.argv[3]}"}, answered
EOF
ok "check --no-control --resolver 127.0.0.1:$port $NAME: the chroot's probe asked the host's DNS server"

sed -i 's/^# Written by/# Kept: written by/' "$root/etc/surblocage/probe.yaml"
# the second run as `curl ... | sh -s --` runs it: the script on standard input
in_root sh -s -- --collector https://other.example.org --source "/tmp/$wheel" <deploy/install-probe.sh \
    2>"$root/tmp/second.err" || { cat "$root/tmp/second.err" >&2; fail "a second run failed"; }
grep -q "^# Kept: written by" "$root/etc/surblocage/probe.yaml" || fail "a second run rewrote probe.yaml"
grep -q "does not name https://other.example.org" "$root/tmp/second.err" || fail "a second run did not say the config names another collector"
[ "$(in_root surblocage-probe --version)" = "surblocage-probe $version" ] || fail "--version after a second run"
ok "a second run, piped into sh -s, succeeds and keeps probe.yaml"

set +e
in_root sh /tmp/install-probe.sh --colector "$COLLECTOR" 2>"$root/tmp/usage.err"
status=$?
set -e
[ "$status" = 2 ] && grep -q -- "unknown argument: --colector" "$root/tmp/usage.err" || fail "bad usage exited $status"
in_root sh /tmp/install-probe.sh --help | grep -q -- "--uninstall" || fail "--help"
ok "bad usage exits 2 naming the argument; --help"

# refusals, status 3 and one line: not root; not Debian; a 32-bit userland (dpkg says armhf, as on
# a 32-bit Raspberry Pi OS: a stand-in dpkg first on PATH plays it)
refused() {
    set +e
    in_root "$@" 2>"$root/tmp/refused.err"
    status=$?
    set -e
    [ "$status" = 3 ] || fail "$* exited $status, not 3: $(cat "$root/tmp/refused.err")"
}
refused setpriv --reuid=65534 --regid=65534 --clear-groups sh /tmp/install-probe.sh --collector "$COLLECTOR"
grep -q "run me as root" "$root/tmp/refused.err" || fail "not root: $(cat "$root/tmp/refused.err")"
cp "$root/etc/os-release" "$root/tmp/os-release"
sed -i 's/^ID=.*/ID=fedora/; s/^PRETTY_NAME=.*/PRETTY_NAME="Fedora Linux 41"/' "$root/etc/os-release"
refused sh /tmp/install-probe.sh --collector "$COLLECTOR"
cp "$root/tmp/os-release" "$root/etc/os-release"
grep -q "Fedora Linux 41 is not Debian or Raspberry Pi OS" "$root/tmp/refused.err" || fail "not Debian: $(cat "$root/tmp/refused.err")"
mkdir -p "$root/tmp/armhf"
printf '#!/bin/sh\necho armhf\n' >"$root/tmp/armhf/dpkg"
chmod 755 "$root/tmp/armhf/dpkg"
refused env PATH=/tmp/armhf:/usr/bin:/bin sh /tmp/install-probe.sh --collector "$COLLECTOR"
grep -q "architecture armhf .* is not supported" "$root/tmp/refused.err" || fail "armhf: $(cat "$root/tmp/refused.err")"
ok "refused with status 3 and a line: not root, not Debian, armhf"

in_root sh /tmp/install-probe.sh --uninstall 2>/dev/null || fail "--uninstall exited $?"
for gone in opt/surblocage usr/local/bin/surblocage-probe etc/systemd/system/surblocage-probe.service; do
    [ ! -e "$root/$gone" ] && [ ! -L "$root/$gone" ] || fail "--uninstall left /$gone"
done
[ -f "$root/etc/surblocage/probe.yaml" ] || fail "--uninstall removed probe.yaml (only --purge does)"
in_root sh /tmp/install-probe.sh --uninstall --purge 2>/dev/null || fail "--uninstall --purge exited $?"
[ ! -e "$root/etc/surblocage" ] || fail "--purge left /etc/surblocage"
ok "--uninstall removes the program and the unit, keeps probe.yaml; --purge removes it"
say "all checks passed"
