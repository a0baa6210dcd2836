"""Targets from start to verdict (flow, control, verdict): the one loop of `check` and `run`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from probe import verdict, whoami
from probe.client import CollectorClient
from probe.diagnostics import Diagnoser
from probe.flow import Flow
from probe.record import Control, Measurement, ProbeInfo, Target
from probe.verdict import Fingerprints


@dataclasses.dataclass
class Runner:
    """Measure targets, ask the control for each (unless there is none) and judge each record."""

    flow: Flow
    probe: ProbeInfo
    client: CollectorClient | None
    fingerprints: Fingerprints | None
    concurrency: int = 8
    # the whoami name (probe.whoami); None: no lookup
    whoami_name: str | None = None
    # raw-socket diagnostics of blocked targets (probe/diagnostics); None: records carry null
    diagnoser: Diagnoser | None = None

    async def learn_whoami(self) -> str | None:
        """Look up which address the line's resolver asks from; keep it in the probe block."""
        o = self.flow.options
        path = whoami.path_for(o.paths)
        if self.whoami_name is None or path is None:
            return None
        found = await whoami.egress(
            self.whoami_name, path, o.dns_timeout_seconds, self.flow.steps.dns
        )
        self.probe = dataclasses.replace(self.probe, whoami=found)
        return found

    async def judge(
        self, target: Target, dns_only: bool = False,
        gate: contextlib.AbstractAsyncContextManager[Any] | None = None,
    ) -> Measurement:  # fmt: skip
        """Measure one target, fetch its control and attach control and verdict to the record.

        ``gate`` bounds the targets using the network at once (see Flow.measure).
        """
        m = await self.flow.measure(target, self.probe, dns_only=dns_only, gate=gate)
        control: Control | None = None
        if self.client is not None:
            addresses = list(dict.fromkeys(a for r in m.dns for a in r.answers))
            control = await self.client.control(target.url, addresses)
        v, paths = verdict.judge(m, control, self.fingerprints)
        m = dataclasses.replace(m, control=control, verdict=v, paths=paths)
        if self.diagnoser is not None and v.status == "blocked":
            m = dataclasses.replace(m, diagnostics=await self.diagnoser.diagnose(m))
        return m

    async def run(
        self,
        targets: Sequence[Target],
        dns_only: frozenset[str] = frozenset(),
        on_done: Callable[[Measurement], None] | None = None,
    ) -> list[Measurement]:
        """Judge every target, ``concurrency`` at a time; results in input order."""
        out: list[Measurement | None] = [None] * len(targets)

        def keep(i: int, m: Measurement) -> None:
            out[i] = m
            if on_done is not None:
                on_done(m)

        await self.each(targets, dns_only, keep)
        return [m for m in out if m is not None]

    async def each(
        self,
        targets: Sequence[Target],
        dns_only: frozenset[str],
        on_done: Callable[[int, Measurement], None],
        gate: contextlib.AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        """Judge every target, as many at once as ``gate`` admits (default: ``concurrency``),
        and hand each record with its index in ``targets`` to ``on_done`` as soon as judged.

        A gate may refuse a target by raising `TargetSkipped` (the target is left out, the
        others go on); cancelling this coroutine cancels every target in flight.
        """
        gate = gate or asyncio.Semaphore(self.concurrency)
        if self.diagnoser is not None:
            self.diagnoser.new_cycle()

        async def one(i: int, t: Target) -> None:
            try:
                m = await self.judge(t, t.service in dns_only, gate=gate)
            except TargetSkipped:
                return
            on_done(i, m)

        async with asyncio.TaskGroup() as tg:
            for i, t in enumerate(targets):
                tg.create_task(one(i, t))


class TargetSkipped(Exception):
    """Raised by a gate to leave a target unmeasured (the cycle's byte budget is spent)."""
