#!/bin/sh
# Install the Surblocage probe on Debian 12+ or Raspberry Pi OS 64-bit (arm64, amd64), with no
# clone: a virtual environment in /opt/surblocage/venv, the command /usr/local/bin/surblocage-probe,
# /etc/surblocage/probe.yaml and the systemd unit (shipped inside the package). Run it again to
# update; --uninstall removes it. POSIX sh, so that it also runs piped:
#   curl -fsSL URL/install-probe.sh | sudo sh -s -- --collector https://collector.example.org
set -eu

PROG=install-probe
PREFIX=/opt/surblocage
VENV=$PREFIX/venv
LINK=/usr/local/bin/surblocage-probe
CONFIG=/etc/surblocage/probe.yaml
UNIT=surblocage-probe.service
UNIT_DIR=/etc/systemd/system
STATE=/var/lib/surblocage-probe
APT_PACKAGES="python3 python3-venv ca-certificates"

# exit statuses (documented in --help)
EXIT_FAILED=1
EXIT_USAGE=2
EXIT_UNSUPPORTED=3

usage() {
    cat <<EOF
Usage: sudo sh install-probe.sh --collector URL [--source SPEC] [--no-start]
       sudo sh install-probe.sh --uninstall [--purge]

Install the Surblocage probe (the probe only: no database stack, no scapy) on Debian 12 or later
or Raspberry Pi OS 64-bit, arm64 or amd64:
  - apt-get installs $APT_PACKAGES (when missing);
  - $VENV gets SPEC from pip, $LINK links to its command;
  - $CONFIG is written with collector.url (an existing file is never changed);
  - the unit $UNIT goes to $UNIT_DIR, is enabled and (re)started.
Running it again updates the probe and keeps the configuration and the probe's identity.

Options:
  --collector URL  the collector you were given (https://...); needed unless $CONFIG exists
  --source SPEC    what pip installs (default: surblocage, from PyPI); a version
                   (surblocage==0.1.0), a wheel file or a wheel URL
  --no-start       install, but do not enable or start the service
  --uninstall      stop and remove the service, the program and the link; keep $CONFIG and
                   the probe's identity and unsent records ($STATE)
  --purge          with --uninstall, remove those too
  -h, --help       this help

Exit status: 0 done, $EXIT_FAILED a step failed (its output says which), $EXIT_USAGE bad usage,
$EXIT_UNSUPPORTED not root, or not a supported system.
EOF
}

say() { echo "$PROG: $*" >&2; }
die() { say "$*"; exit "$EXIT_FAILED"; }
usage_error() { say "$*; see --help"; exit "$EXIT_USAGE"; }
unsupported() { say "$*"; exit "$EXIT_UNSUPPORTED"; }

parse_arguments() {
    collector=""
    source_spec="surblocage"
    start=yes
    action=install
    purge=no
    while [ $# -gt 0 ]; do
        case $1 in
            -h | --help) usage; exit 0 ;;
            --collector) [ $# -ge 2 ] || usage_error "--collector needs a URL"; collector=$2; shift ;;
            --collector=*) collector=${1#*=} ;;
            --source) [ $# -ge 2 ] || usage_error "--source needs a SPEC"; source_spec=$2; shift ;;
            --source=*) source_spec=${1#*=} ;;
            --no-start) start=no ;;
            --uninstall) action=uninstall ;;
            --purge) purge=yes ;;
            *) usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    [ -n "$source_spec" ] || usage_error "--source: empty SPEC"
    [ "$purge" = no ] || [ "$action" = uninstall ] || usage_error "--purge goes with --uninstall"
    case $collector in
        "") ;;
        *[[:space:]\"\'\\]*) usage_error "--collector: a URL has no space, quote or backslash" ;;
        https://?* | http://?*) ;;
        *) usage_error "--collector: '$collector' must start with https://" ;;
    esac
}

# Whether systemd manages this machine (sd_booted(3)): not in a chroot, nor in most containers.
systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

check_system() {
    [ "$(id -u)" = 0 ] || unsupported "run me as root (sudo sh install-probe.sh ...)"
    [ -r /etc/os-release ] || unsupported "no /etc/os-release: this script knows Debian and Raspberry Pi OS only; elsewhere: pipx install 'surblocage[probe]'"
    # shellcheck disable=SC1091
    os_id=$(. /etc/os-release && echo "${ID:-}")
    os_name=$(. /etc/os-release && echo "${PRETTY_NAME:-$os_id}")
    case $os_id in
        debian | raspbian) ;;
        *) unsupported "$os_name is not Debian or Raspberry Pi OS; elsewhere: pipx install 'surblocage[probe]' (Python 3.11+)" ;;
    esac
    # dpkg's architecture, not uname's: a 32-bit Raspberry Pi OS runs on a 64-bit kernel
    arch=$(dpkg --print-architecture)
    case $arch in
        arm64 | amd64) ;;
        *) unsupported "architecture $arch (uname -m: $(uname -m)) is not supported: install the 64-bit Raspberry Pi OS or Debian (arm64 or amd64)" ;;
    esac
    say "system: $os_name, $arch"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_packages() {
    missing=""
    for package in $APT_PACKAGES; do installed "$package" || missing="$missing $package"; done
    if [ -z "$missing" ]; then
        say "apt: $APT_PACKAGES already installed"
        return
    fi
    say "apt: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
}

check_python() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || unsupported "python3 is $(python3 -V 2>&1), the probe needs 3.11 or later (Debian 12 or later)"
}

install_program() {
    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        say "venv: creating $VENV"
        rm -rf "$VENV"
        mkdir -p "$PREFIX"
        python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    fi
    say "pip: installing $source_spec into $VENV (the probe's dependencies come from PyPI)"
    "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --upgrade "$source_spec" || die "pip install $source_spec failed"
    [ -x "$VENV/bin/surblocage-probe" ] || die "$source_spec has no surblocage-probe command"
    ln -sfn "$VENV/bin/surblocage-probe" "$LINK"
    say "installed $("$LINK" --version) as $LINK"
}

write_config() {
    if [ -e "$CONFIG" ]; then
        say "config: keeping $CONFIG as it is"
        if [ -n "$collector" ] && ! grep -qF "$collector" "$CONFIG"; then
            say "config: $CONFIG does not name $collector: edit collector.url there if it should"
        fi
        return
    fi
    [ -n "$collector" ] || usage_error "--collector URL is needed: $CONFIG does not exist yet"
    mkdir -p "$(dirname "$CONFIG")"
    # readable by everyone: the service's user is transient, and the file holds no secret
    umask 022
    cat >"$CONFIG" <<EOF
# Written by install-probe.sh. Every other key is optional: see configs/probe.example.yaml in the
# project, or deploy/README.md ("Configure").
collector:
  url: "$collector"
EOF
    say "config: wrote $CONFIG"
}

install_unit() {
    # the unit ships inside the package, so that the version installed and its unit match
    unit_file=$("$VENV/bin/python" -c 'import importlib.resources as r; print(r.files("probe") / "data" / "surblocage-probe.service")') \
        || die "cannot locate the unit in the installed package"
    [ -f "$unit_file" ] || die "the installed package has no $unit_file"
    mkdir -p "$UNIT_DIR"
    install -m 0644 "$unit_file" "$UNIT_DIR/$UNIT"
    say "unit: installed $UNIT_DIR/$UNIT"
    if systemd_running; then systemctl daemon-reload; fi
    if [ "$start" = no ]; then
        say "unit: not enabled (--no-start): systemctl enable --now ${UNIT%.service} starts it"
    elif systemd_running; then
        systemctl enable --quiet "$UNIT"
        # restart, not start: a second run is an update, and the running daemon has the old code
        systemctl restart "$UNIT" || die "systemctl restart $UNIT failed: journalctl -u ${UNIT%.service}"
        say "unit: enabled and started; journalctl -u ${UNIT%.service} -f shows its logs"
    else
        say "unit: systemd is not running here (a chroot or a container?): not enabling it; on the booted system run: systemctl enable --now ${UNIT%.service}"
    fi
}

uninstall() {
    if systemd_running; then
        systemctl disable --now --quiet "$UNIT" 2>/dev/null || true
    fi
    rm -f "$UNIT_DIR/$UNIT"
    rm -rf "$UNIT_DIR/$UNIT.d"
    if systemd_running; then systemctl daemon-reload; fi
    # the link only if it is ours
    if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$VENV/bin/surblocage-probe" ]; then rm -f "$LINK"; fi
    rm -rf "$VENV"
    rmdir "$PREFIX" 2>/dev/null || true
    if [ "$purge" = yes ]; then
        rm -f "$CONFIG"
        rmdir "$(dirname "$CONFIG")" 2>/dev/null || true
        # DynamicUser keeps the state under /var/lib/private, with a link at $STATE
        rm -rf "$STATE" "/var/lib/private/$(basename "$STATE")"
        say "removed the probe, its configuration and its state"
    else
        say "removed the probe; kept $CONFIG and $STATE (--purge removes them)"
    fi
    say "apt packages ($APT_PACKAGES) stay installed: remove them with apt-get if nothing else uses them"
}

main() {
    parse_arguments "$@"
    check_system
    if [ "$action" = uninstall ]; then
        uninstall
        return
    fi
    install_packages
    check_python
    install_program
    write_config
    install_unit
    cat <<EOF
Surblocage probe installed. Try one measurement:
  surblocage-probe check --config $CONFIG www.france.tv
and see how it runs:
  surblocage-probe status --config $CONFIG --state-dir $STATE
EOF
}

# The last line: piped into sh, the whole script is read before anything runs, and no command
# reads the rest of it from standard input (each gets /dev/null).
main "$@" </dev/null
