"""The censorship lab: network namespaces for probes, ISP routers and an "internet" (lab.md).

``Lab(prefix, isps=[IspSpec("a"), ...], delay_ms=0).up()`` builds, per ISP, a probe LAN (a
bridge in the router ns, one veth per probe ns), a router ns (forwarding, the ISP's resolver,
block-page host, TLS interceptor, transparent proxy, DNS injector and iptables middlebox) and
an uplink to one "internet" ns (authoritative DNS, a public resolver, web hosts on lo, the
collector's address). No veth end and no rule ever sits in the root namespace; every name
starts with a run-unique prefix; ``down()`` is idempotent and leaves nothing behind.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from tests.lab import addressing, certs, planting, public_resolvers, readiness, wiring
from tests.lab.addressing import IspAddresses
from tests.lab.netns import exec_in, run_in
from tests.lab.plan import TECHNIQUES
from tests.lab.processes import LabError, Processes, Running
from tests.lab.technique import Expect, IspSpec, Technique, expected

DELAY_QUEUE = 1
FINGERPRINTS = pathlib.Path(__file__).with_name("fingerprints.yaml")  # the lab's block pages
R = TypeVar("R")


def default_prefix() -> str:
    """Return $SURBLOCAGE_LAB_PREFIX, or "sb<pid>": a live process's pid is unique."""
    return os.environ.get("SURBLOCAGE_LAB_PREFIX") or f"sb{os.getpid()}"


def unusable_reason() -> str | None:
    """Return why the lab cannot be built on this machine, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "the lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the lab needs root (ip netns, iptables, /etc/netns): run the lab tests as root"
    for tool in ("ip", "iptables", "iptables-restore", "ip6tables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (scripts/test-deps.sh installs the lab's tools)"
    name = f"{default_prefix()}-usable"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class Lab:
    """One lab run: its namespaces, servers and files. See the module docstring."""

    def __init__(
        self, prefix: str | None = None, isps: Sequence[IspSpec] | None = None,
        delay_ms: float = 0, techniques: Sequence[Technique] = TECHNIQUES,
    ) -> None:  # fmt: skip
        self.prefix = prefix or default_prefix()
        self.isps = tuple(isps or (IspSpec("a"),))
        self.delay_ms = delay_ms  # added round-trip time on each ISP uplink (half each way)
        self.techniques = tuple(techniques)
        self.addresses = {s.letter: IspAddresses(s.letter) for s in self.isps}
        self.workdir = pathlib.Path(tempfile.gettempdir()) / f"surblocage-lab-{self.prefix}"
        self.ca_file = str(self.workdir / "ca.pem")
        self.processes = Processes(self.workdir)
        self.boxes: dict[str, int] = {}  # ISP letter -> the router holding its middlebox rules

    # -- names and addresses --------------------------------------------------------------
    def roles(self) -> dict[str, str]:
        """Return role -> netns name: internet, router_<x>, probe_<x><n>, probe_<x> (= n 1)."""
        out = {"internet": f"{self.prefix}-internet"}
        for spec in self.isps:
            x = spec.letter
            out[f"router_{x}"] = f"{self.prefix}-router_{x}"
            for i in range(1, spec.chain + 1):
                out[f"core_{x}{i}"] = f"{self.prefix}-core_{x}{i}"
            for n in range(1, spec.probes + 1):
                out[f"probe_{x}{n}"] = f"{self.prefix}-probe_{x}{n}"
            out[f"probe_{x}"] = out[f"probe_{x}1"]
        return out

    def ns(self, role: str) -> str:
        """Return the netns name of a role (a netns name of this lab is returned as is)."""
        roles = self.roles()
        if role in roles:
            return roles[role]
        if role in roles.values():
            return role
        raise KeyError(f"no lab namespace {role!r}; roles: {sorted(roles)}")

    def isp(self, letter: str = "a") -> IspAddresses:
        return self.addresses[letter]

    def resolver(self, letter: str = "a") -> str:
        return self.addresses[letter].resolver

    public_resolver = addressing.PUBLIC_RESOLVER
    auth_dns = addressing.AUTH_DNS
    collector_addr = addressing.COLLECTOR
    collector_port = addressing.COLLECTOR_PORT
    collector_url = f"http://{addressing.COLLECTOR}:{addressing.COLLECTOR_PORT}"
    control_url = f"{collector_url}/api/v1/control"
    dead_control_url = addressing.DEAD_CONTROL_URL
    allow_network = addressing.NETWORK

    def planted(self, letter: str = "a") -> tuple[Technique, ...]:
        spec = next(s for s in self.isps if s.letter == letter)
        return tuple(planting.planted(spec, self.techniques))

    def expected(self, technique: Technique, letter: str = "a") -> Expect:
        """Return the verdict expected for ``technique`` from a probe of ISP ``letter``."""
        return expected(technique, technique in self.planted(letter))

    # -- using the lab --------------------------------------------------------------------
    def exec(
        self, ns: str, argv: list[str], timeout: float = 60, input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run argv in a namespace (role or name); never raises on a non-zero exit."""
        return exec_in(self.ns(ns), argv, timeout=timeout, input=input, env=env)

    def run(self, ns: str, coro_fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
        """Run ``coro_fn(*args)`` in a thread inside the namespace (explicit DNS servers only)."""
        return run_in(self.ns(ns), coro_fn, *args)

    def spawn(
        self, ns: str, argv: list[str], name: str, ready_tcp: tuple[str, int] | None = None,
        ready_marker: str | None = None, timeout: float = 20, env: dict[str, str] | None = None,
    ) -> Running:  # fmt: skip
        """Start an extra process (e.g. the collector); it is stopped by ``stop`` or ``down``."""
        running = self.processes.start(self.ns(ns), argv, name, env=env)
        try:
            if ready_marker:
                self.processes.wait_ready(running, timeout, ready_marker)
            if ready_tcp and not self.run(ns, readiness.wait_tcp, *ready_tcp, timeout):
                self.processes.check_alive()
                raise LabError(f"{name}: {ready_tcp} not listening after {timeout}s")
        except BaseException:
            self.processes.stop(running)
            raise
        return running

    def stop(self, running: Running) -> None:
        self.processes.stop(running)

    def probe_argv(
        self, technique: Technique, letter: str = "a", control_url: str | None = None
    ) -> list[str]:
        """Return the `surblocage-probe check` command line for a technique's URLs."""
        resolver = self.public_resolver if technique.resolver == "public" else self.resolver(letter)
        control = ["--no-control"] if control_url is None else ["--control", control_url]
        if technique.control == "dead":
            control = ["--control", self.dead_control_url]
        command = str(pathlib.Path(sys.executable).with_name("surblocage-probe"))
        return [
            command, "check", "--json", "--resolver", resolver, "--ca-file", self.ca_file,
            "--allow-network", self.allow_network, "--fingerprints", str(FINGERPRINTS),
            *control, *technique.urls,
        ]  # fmt: skip

    def box_role(self, letter: str, hop: int) -> str:
        """The role of the router that holds an ISP's middlebox rules: 0 its router, i its
        core router i (IspSpec.chain)."""
        return f"router_{letter}" if hop == 0 else f"core_{letter}{hop}"

    def move_box(self, letter: str, hop: int) -> None:
        """Move the ISP's middlebox rules to another of its routers (0: its own, i: core i)."""
        rules = (self.workdir / f"iptables-{letter}.rules").read_text()
        spec = next(s for s in self.isps if s.letter == letter)
        empty = planting.iptables_restore(
            dataclasses.replace(spec, techniques=(), rules=()), self.isp(letter), ()
        )
        exec_in(self.ns(self.box_role(letter, self.boxes[letter])), ["iptables-restore"],
                input=empty, check=True)  # fmt: skip
        exec_in(self.ns(self.box_role(letter, hop)), ["iptables-restore"], input=rules, check=True)
        self.boxes[letter] = hop

    def rule_packets(self, letter: str, destination: str) -> int:
        """Return how many packets the ISP's FORWARD rules to ``destination`` have matched."""
        listing = self.exec(f"router_{letter}", ["iptables", "-L", "FORWARD", "-n", "-v", "-x"])
        fields = (line.split() for line in listing.stdout.splitlines()[2:])
        return sum(int(f[0]) for f in fields if len(f) > 8 and f[8] == destination)

    # -- build and tear down --------------------------------------------------------------
    def up(self) -> Lab:
        """Build everything, start every server, check the paths; tear down on any failure."""
        self._claim()
        self.down()  # what a dead run with this prefix left behind
        atexit.register(self.down)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / "owner").write_text(str(os.getpid()))
            self._build()
            self._write_configs()
            self._start_servers()
            readiness.check(self)
        except BaseException:
            self.down()
            raise
        return self

    def _claim(self) -> None:
        """Refuse a prefix a live process uses: up() would tear its lab down."""
        owner = self.workdir / "owner"
        pid = int(owner.read_text() or 0) if owner.exists() else 0
        if pid and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            raise LabError(f"lab prefix {self.prefix!r} is in use by live pid {pid}")

    def down(self) -> None:
        """Stop the servers, kill what runs in our namespaces, delete them and our files."""
        self.processes.stop_all()
        wiring.remove(self.prefix)
        if os.environ.get("SURBLOCAGE_LAB_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.down)

    def _build(self) -> None:
        roles = self.roles()
        for role, name in roles.items():
            if not (role.startswith("probe_") and not role[-1].isdigit()):  # skip aliases
                wiring.make_namespace(name, router=role.startswith(("router_", "core_")))
        for spec in self.isps:
            a, router = self.addresses[spec.letter], roles[f"router_{spec.letter}"]
            if spec.chain:
                cores = [roles[f"core_{spec.letter}{i}"] for i in range(1, spec.chain + 1)]
                wiring.wire_chain(a, router, cores, roles["internet"])
            else:
                wiring.wire_isp(a, router, roles["internet"])
            for n in range(1, spec.probes + 1):
                wiring.wire_probe(a, n, router, roles[f"probe_{spec.letter}{n}"])
        internet = [*planting.internet_addresses(self.techniques), *public_resolvers.ADDRESSES]
        wiring.add_host_addresses(roles["internet"], internet)

    def _write_configs(self) -> None:
        t, w = self.techniques, self.workdir
        # the encrypted public resolver's address is in the lab certificate too (DoT, DoH)
        names = [*planting.names(t), public_resolvers.ENCRYPTED]
        certs.write_all(w, names, [s.letter for s in self.isps])
        self._write("auth.json", {**planting.auth_config(t), "whoami": [public_resolvers.WHOAMI]})
        self._write("public.json", planting.public_resolver_config())
        self._write("censor.json", public_resolvers.censor_config())
        self._write("secured.json", public_resolvers.encrypted_config(str(w / "web.pem")))
        lans = [a.lan for a in self.addresses.values()]
        self._write("web.json", planting.web_config(t, str(w), lans))
        for spec in self.isps:
            a, x = self.addresses[spec.letter], spec.letter
            self._write(f"resolver-{x}.json", planting.resolver_config(spec, a, t))
            self._write(f"isp-web-{x}.json", planting.isp_web_config(a, str(w)))
            self._write(f"proxy-{x}.json", planting.proxy_config(spec, a, t))
            self._write(f"inject-{x}.json", planting.inject_config(spec, a, t))
            rules = planting.iptables_restore(spec, a, t)
            (w / f"iptables-{x}.rules").write_text(rules)
            exec_in(
                self.ns(self.box_role(x, spec.box)), ["iptables-restore"], input=rules, check=True
            )
            self.boxes[x] = spec.box

    def _write(self, name: str, config: dict[str, Any] | None) -> None:
        if config is not None:
            (self.workdir / name).write_text(json.dumps(config, indent=1))

    def _server(self, role: str, module: str, *args: str, name: str) -> Running:
        argv = [sys.executable, "-m", f"tests.lab.servers.{module}", *args]
        return self.processes.start(self.ns(role), argv, name)

    def _start_servers(self) -> None:
        w = self.workdir
        started = [
            self._server("internet", "dnsd", str(w / "auth.json"), name="auth-dns"),
            self._server("internet", "dnsd", str(w / "public.json"), name="public-dns"),
            self._server("internet", "dnsd", str(w / "censor.json"), name="censor-dns"),
            self._server("internet", "secured", str(w / "secured.json"), name="secured-dns"),
            self._server("internet", "webd", str(w / "web.json"), name="web"),
        ]
        for spec in self.isps:
            started += self._start_isp(spec.letter)
        for running in started:
            self.processes.wait_ready(running)
        for spec in self.isps if self.delay_ms else ():
            for rule in planting.delay_rules(DELAY_QUEUE):
                for tool in ("iptables", "ip6tables"):
                    exec_in(self.ns(f"router_{spec.letter}"), [tool, *rule], check=True)

    def _start_isp(self, x: str) -> list[Running]:
        w, role = self.workdir, f"router_{x}"
        started = [
            self._server(role, "dnsd", str(w / f"resolver-{x}.json"), name=f"resolver-{x}"),
            self._server(role, "webd", str(w / f"isp-web-{x}.json"), name=f"isp-web-{x}"),
        ]
        for module, config in (
            ("tproxy", w / f"proxy-{x}.json"),
            ("inject", w / f"inject-{x}.json"),
        ):
            if config.exists():
                started.append(self._server(role, module, str(config), name=f"{module}-{x}"))
        if self.delay_ms:
            half = str(self.delay_ms / 2)
            started.append(self._server(role, "delay", str(DELAY_QUEUE), half, name=f"delay-{x}"))
        return started

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def main(argv: Sequence[str]) -> int:
    """`python -m tests.lab.topology clean PREFIX...`: remove a crashed run's leftovers."""
    if len(argv) < 2 or argv[0] != "clean":
        print("usage: python -m tests.lab.topology clean PREFIX...", file=sys.stderr)
        return 2
    for prefix in argv[1:]:
        Lab(prefix=prefix).down()
        print(f"removed lab {prefix}: namespaces, /etc/netns entries, work directory")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
