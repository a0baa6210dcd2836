"""collector.judge.background: the judge of pending pairs in the event loop, and the metrics
flags and collateral drive."""

from __future__ import annotations

import datetime

import prometheus_client
import pytest

from collector.judge import Findings, Judge, open_store, refresh_metrics
from collector.metrics import Metrics
from collector.store import MeasurementRow, Store, StoreUnavailable
from tests.support.flags import look, recent, shared

UTC = datetime.UTC
OPENED = "surblocage_flags_opened_total"
OPEN = "surblocage_flags_open"
MYCANAL_DNS = {"network": "Orange", "service": "mycanal", "category": "iptv_legal", "method": "dns"}


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def metrics(registry: prometheus_client.CollectorRegistry) -> Metrics:
    return Metrics(registry, version="test")


async def submit(store: Store, metrics: Metrics, *rows: MeasurementRow) -> None:
    """Store a batch, then judge what it left pending, as the collector's judge does."""
    store.insert_batch(rows)
    await Judge(Findings(store), metrics).drain()


async def test_a_flag_is_counted_once_when_it_opens_and_its_series_goes_when_it_closes(
    store: Store, metrics: Metrics, registry: prometheus_client.CollectorRegistry
) -> None:
    opened = {"network": "Orange", "method": "dns"}
    await submit(store, metrics, look("p1", recent(0)))
    assert (registry.get_sample_value(OPENED, opened) or 0) == 0
    assert registry.get_sample_value(OPEN, MYCANAL_DNS) is None
    second = look("p2", recent(1))
    await submit(store, metrics, second)
    assert registry.get_sample_value(OPENED, opened) == 1
    assert registry.get_sample_value(OPEN, MYCANAL_DNS) == 1
    await submit(store, metrics, second)  # a retried batch: judged again, opens nothing twice
    assert registry.get_sample_value(OPENED, opened) == 1
    await submit(
        store, metrics, look("p1", recent(2), "ok", None), look("p2", recent(3), "ok", None)
    )
    assert registry.get_sample_value(OPEN, MYCANAL_DNS) is None
    assert registry.get_sample_value(OPENED, opened) == 1
    assert [f["state"] for f in Findings(store).query_flags()] == ["closed"]


async def test_one_blocked_shared_address_sets_the_collateral_gauges(
    store: Store, metrics: Metrics, registry: prometheus_client.CollectorRegistry
) -> None:
    services = ("mycanal", "beinsports", "deezer")
    for n, probe in enumerate(("f1", "f2")):
        await submit(
            store, metrics, *(shared(probe, recent(n), s, network="Free") for s in services)
        )
    free = {"network": "Free"}
    assert registry.get_sample_value("surblocage_collateral_addresses", free) == 1
    assert registry.get_sample_value("surblocage_collateral_services", free) == 3
    assert registry.get_sample_value(OPENED, {"network": "Free", "method": "tcp_ip"}) == 3
    for n, probe in enumerate(("f1", "f2")):
        rows = (shared(probe, recent(10 + n), s, False, network="Free") for s in services)
        await submit(store, metrics, *rows)
    assert registry.get_sample_value("surblocage_collateral_addresses", free) is None


async def test_refresh_sets_probes_last_seen_and_findings_from_the_store(
    store: Store, registry: prometheus_client.CollectorRegistry
) -> None:
    now = datetime.datetime.now(UTC)
    for n, network in enumerate(("Orange", "Orange", "Free")):
        store.register_probe(f"p{n}", f"h{n}", None, network, now - datetime.timedelta(days=1))
    store.touch_probe("p0", 3215, "Orange", now - datetime.timedelta(minutes=5))
    store.touch_probe("p2", 12322, "Free", now - datetime.timedelta(hours=3))
    # the flag was opened by another collector process: this one learns of it from the store
    await submit(
        store, Metrics(prometheus_client.CollectorRegistry()), look("p0", recent(0), blockpage="fr")
    )
    await refresh_metrics(Findings(store), Metrics(registry, version="test"), 3600)
    value = registry.get_sample_value
    assert value("surblocage_probes", {"network": "Orange", "status": "live"}) == 1
    assert value("surblocage_probes", {"network": "Orange", "status": "silent"}) == 1
    assert value("surblocage_probes", {"network": "Free", "status": "silent"}) == 1
    assert value("surblocage_probes", {"network": "Free", "status": "live"}) == 0
    seen = value("surblocage_network_last_seen_timestamp_seconds", {"network": "Free"})
    assert seen == (now - datetime.timedelta(hours=3)).timestamp()
    assert value(OPEN, MYCANAL_DNS) == 1


async def test_a_store_that_fails_raises_store_unavailable(
    tmp_path: object, metrics: Metrics
) -> None:
    with open_store(f"sqlite:///{tmp_path}/unmigrated.db") as unmigrated:
        with pytest.raises(StoreUnavailable):
            await Judge(Findings(unmigrated), metrics).drain()
