#!/usr/bin/env bash
# Test deploy/install-probe.sh where systemd runs: boot a Debian bookworm root with systemd
# (scripts/debian-rootfs.sh --systemd) in systemd-nspawn, install this checkout's wheel with the
# script, and check that the unit is enabled and the daemon runs under it; that a second run (an
# update) restarts it; that --uninstall stops and disables it. The probe's collector is a closed
# port on loopback, so the daemon sends nothing off this machine. Needs root and systemd-nspawn
# (Debian package systemd-container); works without systemd on the host (--register=no
# --keep-unit). Each check prints "test-install-systemd: ok: ..."; a failure stops with status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

[ "$(id -u)" = 0 ] || { echo "test-install-systemd: needs root (systemd-nspawn)" >&2; exit 2; }
say() { echo "test-install-systemd: $*" >&2; }
ok() { say "ok: $*"; }
fail() { say "FAIL: $*"; exit 1; }
command -v systemd-nspawn >/dev/null || fail "no systemd-nspawn (Debian package systemd-container)"

root=$(mktemp -d /var/tmp/surblocage-systemd.XXXXXX)
nspawn_pid=""
init=""
cleanup() {
    if [ -n "$init" ]; then kill -RTMIN+4 "$init" 2>/dev/null || true; fi # poweroff
    if [ -n "$nspawn_pid" ]; then
        for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        kill "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if grep -q " $root/" /proc/mounts; then
        say "left $root: something is still mounted there"
    else
        rm -rf "$root"
    fi
    rm -f "$root.console"
    true
}
trap cleanup EXIT

tarball=$(bash scripts/debian-rootfs.sh --systemd)
tar -C "$root" -xf "$tarball"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$root/srv" . >"$root/srv/wheel.log" 2>&1 \
    || { cat "$root/srv/wheel.log" >&2; fail "pip wheel"; }
wheel=$(cd "$root/srv" && ls surblocage-*.whl)
cp deploy/install-probe.sh "$root/srv/"
cp /etc/resolv.conf "$root/etc/resolv.conf"

systemd-nspawn --quiet --directory "$root" --boot --register=no --keep-unit \
    --machine "surblocage-test-$$" >"$root.console" 2>&1 </dev/null &
nspawn_pid=$!
for _ in $(seq 150); do
    init=$(pgrep -P "$nspawn_pid" | head -n 1 || true)
    [ -n "$init" ] && break
    sleep 0.2
done
[ -n "$init" ] || { cat "$root.console" >&2; fail "the container did not boot"; }
# inside the container: its namespaces (the host's network, as nspawn's default)
inside() {
    nsenter --target "$init" --mount --uts --ipc --pid --root --wd /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"
}
for _ in $(seq 150); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
    sleep 0.2
done
ok "booted with systemd ($state)"

inside sh /srv/install-probe.sh --collector http://127.0.0.1:9 --source "/srv/$wheel" 2>"$root/srv/first.err" \
    || { cat "$root/srv/first.err" >&2; fail "install-probe.sh failed"; }
grep -q "unit: enabled and started" "$root/srv/first.err" || fail "no 'enabled and started': $(cat "$root/srv/first.err")"
[ "$(inside systemctl is-enabled surblocage-probe)" = enabled ] || fail "the unit is not enabled"
for _ in $(seq 50); do [ "$(inside systemctl is-active surblocage-probe || true)" = active ] && break; sleep 0.2; done
[ "$(inside systemctl is-active surblocage-probe || true)" = active ] || fail "the service is not active: $(inside systemctl status surblocage-probe --no-pager 2>&1)"
first=$(inside systemctl show -p MainPID --value surblocage-probe)
for _ in $(seq 100); do inside journalctl -u surblocage-probe --no-pager 2>/dev/null | grep -q "probe started" && break; sleep 0.2; done
inside journalctl -u surblocage-probe --no-pager | grep -q "probe started version=" || fail "no 'probe started' in the journal"
ok "the unit is enabled and the daemon runs under it (pid $first)"

inside sh -s -- --source "/srv/$wheel" <deploy/install-probe.sh 2>"$root/srv/second.err" \
    || { cat "$root/srv/second.err" >&2; fail "a second run failed"; }
second=$(inside systemctl show -p MainPID --value surblocage-probe)
[ "$second" != "$first" ] && [ "$second" != 0 ] || fail "a second run did not restart the daemon ($first -> $second)"
ok "a second run restarts the daemon (pid $first -> $second)"

inside sh /srv/install-probe.sh --uninstall 2>/dev/null || fail "--uninstall exited $?"
[ "$(inside systemctl is-active surblocage-probe || true)" != active ] || fail "--uninstall left the service running"
[ ! -e "$root/etc/systemd/system/surblocage-probe.service" ] || fail "--uninstall left the unit"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/surblocage-probe.service" ] || fail "--uninstall left the unit enabled"
ok "--uninstall stops and disables the service"
say "all checks passed"
