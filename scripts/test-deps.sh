#!/usr/bin/env bash
# Install and start what the test suite needs on Debian/Ubuntu: lab tools (iproute2, iptables),
# promtool and Prometheus, PostgreSQL. Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v tcpdump >/dev/null || need+=(tcpdump)
[ -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ] || need+=(libnetfilter-queue-dev)
command -v gcc >/dev/null || need+=(gcc)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus >/dev/null || need+=(prometheus)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null || need+=(docker-compose)
# the install and image tests (scripts/test-install.sh, scripts/test-images.sh): a Debian root, dockerd
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "test-deps: missing ${need[*]}; run as root or install them" >&2; exit 2
    fi
    echo "test-deps: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# PostgreSQL on 127.0.0.1:5432 (started before the session on this kind of machine; start it if not)
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null; then
        ver=$(ls /etc/postgresql | sort -V | tail -n1)
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
        for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    fi
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='surblocage_test'" 2>/dev/null | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE surblocage_test" 2>/dev/null \
        || su postgres -c "psql -qc 'CREATE DATABASE surblocage_test'" || true
fi
