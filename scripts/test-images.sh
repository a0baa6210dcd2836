#!/usr/bin/env bash
# Build and start the container images (deploy/container) without a registry: the base is a
# debootstrap bookworm root with python3 (scripts/debian-rootfs.sh --python), `docker import`ed and
# passed as --build-arg BASE. Then: the probe image answers --version and `check --help` and has
# no collector stack; the collector image runs `migrate` on SQLite in a volume, then `serve`
# answers /healthz on loopback. Uses the running Docker daemon, or starts one of its own (no
# bridge, no iptables rules: the containers use the host's network) and stops it at the end.
# Needs root. Each check prints "test-images: ok: ..."; the first failure stops with status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${SURBLOCAGE_TEST_CACHE:-/var/cache/surblocage-test}
TAG=surblocage-test
export DOCKER_BUILDKIT=0 # the classic builder: the daemon's own, no buildx plugin needed

[ "$(id -u)" = 0 ] || { echo "test-images: needs root (debootstrap, dockerd)" >&2; exit 2; }
say() { echo "test-images: $*" >&2; }
ok() { say "ok: $*"; }
fail() { say "FAIL: $*"; exit 1; }
command -v docker >/dev/null || fail "no docker command (Debian package docker.io)"

run_dir=$(mktemp -d /run/surblocage-images.XXXXXX)
dockerd_pid=""
collector=""
cleanup() {
    [ -z "$collector" ] || docker rm -f "$collector" >/dev/null 2>&1 || true
    docker volume rm -f "$TAG-state-$$" >/dev/null 2>&1 || true
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
        # dockerd leaves its default network namespace mounted
        umount "$CACHE/docker-exec/netns/default" 2>/dev/null || true
    fi
    rm -rf "$run_dir"
    true
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || PATH=$PATH:/usr/sbin
    command -v dockerd >/dev/null || fail "no Docker daemon running and no dockerd (Debian package docker.io)"
    say "starting dockerd (log: $CACHE/dockerd.log)"
    mkdir -p "$CACHE/docker"
    export DOCKER_HOST=unix://$run_dir/docker.sock
    dockerd --data-root "$CACHE/docker" --exec-root "$CACHE/docker-exec" --pidfile "$run_dir/dockerd.pid" \
        -H "$DOCKER_HOST" --bridge=none --iptables=false --ip6tables=false >"$CACHE/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { tail -n 20 "$CACHE/dockerd.log" >&2; fail "dockerd did not start"; }
fi
ok "Docker daemon $(docker info --format '{{.ServerVersion}} ({{.Driver}})')"

tarball=$(bash scripts/debian-rootfs.sh --python)
base=$TAG/debian-python:$(basename "$tarball" .tar)
if ! docker image inspect "$base" >/dev/null 2>&1; then
    say "importing $tarball as $base"
    docker import --change 'CMD ["/bin/bash"]' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' "$tarball" "$base" >/dev/null
fi
ok "base image $base (debootstrap bookworm + python3 python3-venv)"

for image in probe collector; do
    say "building $TAG/$image FROM $base (pip downloads the locked wheels: minutes the first time)"
    docker build --quiet --network host --build-arg "BASE=$base" \
        -f "deploy/container/Containerfile.$image" -t "$TAG/$image" . >"$run_dir/build-$image.log" 2>&1 \
        || { tail -n 30 "$run_dir/build-$image.log" >&2; fail "docker build $image"; }
    ok "built $TAG/$image"
done

version=$("$PY" -c 'import probe; print(probe.__version__)')
got=$(docker run --rm --network host "$TAG/probe" --version)
[ "$got" = "surblocage-probe $version" ] || fail "probe image --version said '$got'"
docker run --rm --network host "$TAG/probe" check --help | grep -q -- "--no-control" || fail "probe image check --help"
[ "$(docker run --rm --entrypoint id "$TAG/probe" -u)" = 10001 ] || fail "the probe image runs as root"
if docker run --rm --entrypoint python "$TAG/probe" -c "import sqlalchemy" 2>/dev/null; then
    fail "the probe image has sqlalchemy: it should install the probe alone"
fi
ok "probe image: $got, check --help, user 10001, no sqlalchemy"

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$run_dir/collector.yaml" <<EOF
listen: "127.0.0.1:$port"
database:
  url: "sqlite:////var/lib/surblocage/collector.db"
EOF
chmod 644 "$run_dir/collector.yaml"
docker volume create "$TAG-state-$$" >/dev/null
mounts=(-v "$TAG-state-$$:/var/lib/surblocage" -v "$run_dir/collector.yaml:/etc/surblocage/collector.yaml:ro")
docker run --rm --network host "${mounts[@]}" "$TAG/collector" migrate --config /etc/surblocage/collector.yaml \
    >"$run_dir/migrate.log" 2>&1 || { cat "$run_dir/migrate.log" >&2; fail "collector image migrate"; }
ok "collector image: migrate on SQLite in a volume"
collector=$TAG-collector-$$
docker run -d --name "$collector" --network host "${mounts[@]}" "$TAG/collector" >/dev/null
"$PY" - "$port" <<'EOF' || { docker logs "$collector" >&2 || true; fail "the collector container does not answer /healthz"; }
import json, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/healthz"
for _ in range(300):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            body = json.loads(answer.read())
            assert answer.status == 200, answer.status
            print(f"test-images: /healthz: {body}", file=sys.stderr)
            sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
EOF
ok "collector image: serve answers /healthz on 127.0.0.1:$port"
# the images of earlier builds, now untagged, would fill the cache run after run
docker image prune --force >/dev/null
say "all checks passed"
