"""The load generator of benchmarks/load.py: simulated probes posting batches on their schedules.

A probe here is a registered token, its probe id, its network (records.NETWORKS) and the
collector it posts to. It sends one batch at a time, as the probe's uploader does: the next one is
due ``interval`` x U(0.5, 1.5) seconds after the previous due time; a probe that fell behind sends
at once (never two batches in flight) until the run's end, then waits for its last answer.
Bodies are built from a few templates per network (records.make_record, serialised once) with a
fresh record id each: a few string replacements, so the generator's CPU goes to HTTP. One
process drives its share of probes through one aiohttp session with a bounded connection pool;
a ticker measures how late its event loop runs, so a saturated generator shows itself.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import json
import random
import resource
import time
import uuid
from typing import Any

import aiohttp

from benchmarks import records

RECORD_ID, PROBE_ID = "@record-id@", "@probe-id@"
TEMPLATES_PER_NETWORK = 40


@dataclasses.dataclass(frozen=True)
class Probe:
    """One simulated probe: what registration gave it, and where it posts."""

    probe_id: str
    token: str
    network: int
    base: str


@dataclasses.dataclass(frozen=True)
class Job:
    """One generator process's share: its probes, the common schedule, its connection pool."""

    probes: list[Probe]
    start: float  # time.time() of the first possible batch, the same in every process
    seconds: float
    interval: float
    batch: int
    connections: int
    seed: int
    timeout: float = 120.0


@dataclasses.dataclass
class Tally:
    """What one process saw: ids sent and acknowledged, latencies, answers by status."""

    sent: list[str] = dataclasses.field(default_factory=list)
    acked: list[str] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)
    statuses: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    inserted: int = 0
    duplicates: int = 0
    lag: list[float] = dataclasses.field(default_factory=list)
    last_ack: float = 0.0
    cpu: float = 0.0


def templates(seed: int) -> list[list[str]]:
    """Return, per network, JSON texts of `short` records with placeholders for the two ids."""
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC)
    out = []
    for network in range(len(records.NETWORKS)):
        texts = []
        for _ in range(TEMPLATES_PER_NETWORK):
            started = now - datetime.timedelta(seconds=rng.uniform(60, 3600))
            d = records.make_record(rng, started, PROBE_ID, network, "short").to_dict()
            d["id"] = RECORD_ID
            texts.append(json.dumps(d, separators=(",", ":")))
        out.append(texts)
    return out


def body(rng: random.Random, texts: list[str], probe_id: str, n: int) -> tuple[bytes, list[str]]:
    """Return a batch of ``n`` records of this probe, each with a new id, and the ids."""
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    chosen = rng.choices(texts, k=n)
    parts = [
        t.replace(RECORD_ID, i).replace(PROBE_ID, probe_id)
        for t, i in zip(chosen, ids, strict=True)
    ]
    return ('{"records":[' + ",".join(parts) + "]}").encode(), ids


async def post(
    session: aiohttp.ClientSession, p: Probe, data: bytes, ids: list[str], t: Tally
) -> None:
    """Post one batch; count its answer (a status, or the client error's name) and latency."""
    headers = {"Authorization": f"Bearer {p.token}", "Content-Type": "application/json"}
    t.sent.extend(ids)
    t0 = time.perf_counter()
    try:
        async with session.post(f"{p.base}/api/v1/measurements", data=data, headers=headers) as r:
            answer = await r.read()
        status = str(r.status)
    except TimeoutError:
        status = "client timeout"
    except aiohttp.ClientError as e:
        status = type(e).__name__
    t.latencies.append(time.perf_counter() - t0)
    t.statuses[status] += 1
    if status == "200":
        counts = json.loads(answer)
        t.acked.extend(ids)
        t.inserted += counts["inserted"]
        t.duplicates += counts["duplicates"]
        t.last_ack = time.time()


async def probe_loop(
    session: aiohttp.ClientSession, p: Probe, job: Job, texts: list[str], t: Tally
) -> None:
    rng = random.Random(f"{job.seed} {p.probe_id}")
    due = job.start + rng.uniform(0, job.interval)  # the first batches spread over one interval
    end = job.start + job.seconds
    while due < end and time.time() < end:  # behind schedule, it sends what it can until the end
        await asyncio.sleep(max(0.0, due - time.time()))
        data, ids = body(rng, texts, p.probe_id, job.batch)
        await post(session, p, data, ids, t)
        due += job.interval * rng.uniform(0.5, 1.5)


async def ticker(t: Tally, until: float, period: float = 0.1) -> None:
    """Record how late the event loop wakes up: above a few ms, the generator is the limit."""
    while time.time() < until:
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        t.lag.append(time.perf_counter() - t0 - period)


async def _drive(job: Job) -> Tally:
    tally = Tally()
    texts = templates(job.seed)
    connector = aiohttp.TCPConnector(limit=job.connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=job.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        clock = asyncio.create_task(ticker(tally, job.start + job.seconds))
        await asyncio.gather(
            *(probe_loop(session, p, job, texts[p.network], tally) for p in job.probes)
        )
        await clock
    return tally


def drive(job: Job) -> dict[str, Any]:
    """Run one process's share to the end (in-flight batches answered); return its Tally."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    tally = asyncio.run(_drive(job))
    after = resource.getrusage(resource.RUSAGE_SELF)
    tally.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    out = {f.name: getattr(tally, f.name) for f in dataclasses.fields(tally)}
    out["statuses"] = dict(tally.statuses)  # asdict() would rebuild the Counter from pairs
    return out


async def register(bases: list[str], n: int, parallel: int = 32) -> list[Probe]:
    """Register ``n`` probes (probe i on network i mod 8, posting to collector i mod K)."""
    gate = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> Probe:
            network = i % len(records.NETWORKS)
            base = bases[i % len(bases)]
            payload = {"asn": records.NETWORKS[network][0], "network": f"load-{i}"}
            async with gate, session.post(f"{base}/api/v1/probes", json=payload) as r:
                if r.status != 201:
                    raise SystemExit(f"registration {i}: {r.status} {await r.text()}")
                answer = await r.json()
            return Probe(answer["probe_id"], answer["token"], network, base)

        return list(await asyncio.gather(*(one(i) for i in range(n))))
