"""deploy/grafana: the dashboard is valid Grafana 10 JSON over metrics the collector exports."""

import json
import re
import subprocess

import prometheus_client
import pytest
import yaml

from collector import metrics
from tests.deploy.conftest import DEPLOY, need

DASHBOARD = DEPLOY / "grafana" / "surblocage.json"
METRIC_NAME = re.compile(r"(?<![:\w])surblocage_\w+(?![:\w])")
# Grafana's own variables, replaced by plain values so that promtool can parse the queries
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$network": ".*"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries(dashboard: dict) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p["targets"]]


def exported_names() -> set[str]:
    registry = prometheus_client.CollectorRegistry()
    m = metrics.Metrics(registry, version="0")
    m.set_flags([("Orange", "mycanal", "iptv_legal", "dns")])
    m.set_collateral([("Orange", 1, 2)])
    m.set_probes([("Orange", 1, 0)])
    m.network_seen("Orange")
    m.observe_control(True, 1.0)
    return {s.name for family in registry.collect() for s in family.samples}


def test_dashboard_identity_matches_the_alert_links(dashboard):
    assert dashboard["uid"] == "surblocage"
    assert dashboard["title"] == "Surblocage"
    # Grafana 10.0 writes schemaVersion 37 to 39
    assert 37 <= dashboard["schemaVersion"] <= 39
    rules = (DEPLOY / "prometheus" / "surblocage.rules.yml").read_text()
    assert "/d/surblocage/surblocage?var-network=" in rules


def test_panels_have_unique_ids_and_do_not_overlap(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_required_views_are_there(dashboard):
    titles = " | ".join(p["title"].lower() for p in panels(dashboard))
    for words in ("open blocking flags", "ingested", "rejections", "probes per network",
                  "collateral", "control latency"):  # fmt: skip
        assert words in titles, words
    table = next(p for p in panels(dashboard) if p["title"] == "Open blocking flags")
    assert table["type"] == "table"
    assert table["targets"][0]["format"] == "table" and table["targets"][0]["instant"] is True


def test_every_query_goes_through_the_datasource_variable(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["network"]["allValue"] == ".*"
    for p in panels(dashboard):
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert provisioned["datasources"][0]["uid"] == variables["datasource"]["current"]["value"]


def test_queries_use_only_exported_metrics(dashboard):
    exported = exported_names()
    for expr in queries(dashboard):
        used = set(METRIC_NAME.findall(expr))
        # Prometheus' own ALERTS series is the one query that is not the collector's
        assert used or expr.startswith("count(ALERTS{"), expr
        assert used <= exported, used - exported


def test_queries_are_valid_promql(dashboard, tmp_path):
    """promtool parses each query (as a recording rule) with Grafana's variables filled in."""
    rules = []
    for n, expr in enumerate(queries(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{n}:check", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool = need("promtool", "prometheus")
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(path.read_text().replace("sum by (", "sum by ((", 1))
    rejected = subprocess.run(
        [promtool, "check", "rules", str(broken)], capture_output=True, text=True, check=False
    )
    assert rejected.returncode != 0


def _collector_paths(dashboard: dict) -> list[str]:
    """Every link to the collector's pages in the dashboard: its links, panel and data links."""
    urls = [link["url"] for link in dashboard.get("links", [])]
    for p in panels(dashboard):
        urls += [link["url"] for link in p.get("links", [])]
        urls += [
            link["url"] for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", [])
        ]
    return [u for u in urls if u.startswith("${collector}")]


def test_panels_link_to_the_collectors_pages(dashboard):
    from collector.app import ROUTES

    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert "collector" in names
    paths = {path for method, path, _ in ROUTES if method == "GET"}
    links = _collector_paths(dashboard)
    assert {"/", "/timeline", "/collateral"} <= {
        u.removeprefix("${collector}").split("?")[0] for u in links
    }
    for url in links:
        assert url.removeprefix("${collector}").split("?")[0] in paths, url
    [table] = [p for p in panels(dashboard) if p["title"] == "Open blocking flags"]
    [link] = table["fieldConfig"]["defaults"]["links"]
    assert "service=${__data.fields.service}" in link["url"]
    assert "network=${__data.fields.network" in link["url"]
