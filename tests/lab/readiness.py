"""Proof that a freshly built lab carries traffic before anyone uses it.

Servers announce READY themselves; this checks the paths from every probe namespace (the ISP
resolver answers through the router and the authoritative; the CDN and the block page accept
connections) and warms up each DNS injector (scapy's first forgery is ~30 ms late, lab.md §7)
until a forged answer is seen. Any failure raises LabError naming the probe and the path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.lab import addressing, planting, rawclient
from tests.lab.netns import run_in
from tests.lab.plan import CDN
from tests.lab.processes import LabError

if TYPE_CHECKING:
    from tests.lab.topology import Lab

DEADLINE_SECONDS = 15.0


def check(lab: Lab) -> None:
    """Raise LabError unless every probe reaches its resolver, the CDN and its block page."""
    lab.processes.check_alive()
    for spec in lab.isps:
        a = lab.addresses[spec.letter]
        for n in range(1, spec.probes + 1):
            ns = lab.ns(f"probe_{spec.letter}{n}")
            problem = run_in(ns, _paths, a.resolver, a.blockpage)
            if problem:
                lab.processes.check_alive()
                raise LabError(f"{ns}: {problem}")
        if (lab.workdir / f"inject-{spec.letter}.json").exists():
            if not run_in(lab.ns(f"probe_{spec.letter}1"), _warm_injector, a.blockpage):
                raise LabError(
                    f"injector of ISP {spec.letter} forged nothing in {DEADLINE_SECONDS}s"
                )


async def _paths(resolver: str, blockpage: str) -> str | None:
    """Return None when every path works before the deadline, else what does not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        problem = await _try_paths(resolver, blockpage)
        if problem is None or loop.time() > deadline:
            return problem
        await asyncio.sleep(0.05)


async def _try_paths(resolver: str, blockpage: str) -> str | None:
    answer = await rawclient.resolve(resolver, "ok.example", timeout_seconds=0.5)
    if answer.addresses != [CDN]:
        return f"ISP resolver {resolver} gave {answer} for ok.example"
    for host, port in ((CDN, 443), (blockpage, 443), (addressing.AUTH_DNS, 53)):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
        except (OSError, TimeoutError) as e:
            return f"cannot connect to {host}:{port}: {e!r}"
        writer.close()
        await writer.wait_closed()
    return None


async def _warm_injector(blockpage: str) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while loop.time() < deadline:
        replies = await rawclient.all_replies(addressing.PUBLIC_RESOLVER, planting.WARMUP_NAME, 0.2)
        if any(blockpage in answers for _, answers in replies):
            return True
    return False


async def wait_tcp(host: str, port: int, timeout_seconds: float) -> bool:
    """Return True once host:port accepts a connection, False after the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False
