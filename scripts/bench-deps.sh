#!/usr/bin/env bash
# Install what the benchmarks need beyond the tests' tools (scripts/test-deps.sh): Prometheus
# blackbox_exporter (Debian's, the one benchmarks/blackbox.py and benchmarks/light.py compare
# with), GNU time (benchmarks/rig.py's meter), and in the venv py-spy (benchmarks/profiling.py;
# uvloop, the extra "fast", comes with the lock). Not for CI: the tests
# never run a benchmark. Idempotent: installs only what is missing.
set -euo pipefail
venv=${VENV:-.venv}
need=()
[ -x /usr/bin/prometheus-blackbox-exporter ] || need+=(prometheus-blackbox-exporter)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bench-deps: missing ${need[*]}; run as root or install them" >&2; exit 2
    fi
    echo "bench-deps: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# the exporter's Debian service is not wanted: the benchmarks start their own, in the lab
if command -v systemctl >/dev/null && systemctl is-enabled -q prometheus-blackbox-exporter 2>/dev/null; then
    systemctl disable --now prometheus-blackbox-exporter >/dev/null 2>&1 || true
fi
[ -x "$venv/bin/py-spy" ] || "$venv/bin/python" -m pip install --quiet py-spy
