"""The collector's own HTTP and process metrics on /metrics: requests by route pattern, method
and code, their latency, and process_*; labels bounded (never the path asked)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.collector.harness import Collector


async def scrape(c: Collector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with c.client.get("/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests(samples: dict, route: str, method: str, code: str) -> float:
    key = ("surblocage_http_requests_total", (("code", code), ("method", method), ("route", route)))
    return samples.get(key, 0.0)


async def test_requests_are_counted_by_route_pattern_method_and_code(collector: Collector) -> None:
    for _ in range(3):
        async with collector.client.get("/healthz") as r:
            assert r.status == 200
    async with collector.client.get("/api/v1/flags?method=AAA") as r:
        assert r.status == 400
    async with collector.client.get("/no/such/page/10.1.2.3") as r:
        assert r.status == 404
    async with collector.client.request("DELETE", "/healthz") as r:
        assert r.status == 405
    samples = await scrape(collector)
    assert requests(samples, "/healthz", "GET", "200") == 3
    assert requests(samples, "/api/v1/flags", "GET", "400") == 1
    # a path no route matches is counted under one label, never under the path asked
    assert requests(samples, "unmatched", "GET", "404") == 1
    # a method no route takes: no route matched, and the method outside the closed list
    assert requests(samples, "unmatched", "other", "405") == 1
    routes = {dict(labels).get("route") for (name, labels) in samples if "http_" in name}
    assert not any("10.1.2.3" in (r or "") or "/no/such" in (r or "") for r in routes)
    count = ("surblocage_http_request_duration_seconds_count", (("route", "/healthz"),))
    assert samples[count] == 3


async def test_process_metrics_are_exposed(collector: Collector) -> None:
    samples = await scrape(collector)
    names = {name for name, _ in samples}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= names
    assert samples[("process_resident_memory_bytes", ())] > 0
