"""The collector's configuration: the example file loads; every bad value is named with its key."""

from __future__ import annotations

import pathlib

import pytest

from collector.config import ConfigError, load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_example_file_loads_with_the_defaults() -> None:
    cfg = load_config(str(ROOT / "configs" / "collector.example.yaml"))
    assert cfg == load_config(None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen: nowhere\n", "listen: must be HOST:PORT, got 'nowhere'"),
        ("database:\n  url: mysql://x\n", "database.url: must be sqlite:///PATH or postgresql"),
        ("control:\n  concurrency: 0\n", "control.concurrency: must be a whole number, 1 or more"),
        ("control:\n  enabled: maybe\n", "control.enabled: must be true or false, got 'maybe'"),
        (
            "network:\n  allow_networks: [10.0.0.0/8, 10.0.0.0/33]\n",
            "network.allow_networks[1]: '10.0.0.0/33' is not a network",
        ),
        ("tls:\n  ca_file: /nonexistent.pem\n", "tls.ca_file: no such file: /nonexistent.pem"),
        ("log:\n  format: xml\n", "log.format: must be one of text, json, got 'xml'"),
        (
            "colour: blue\n",
            "colour: unknown key (known: listen, database, watchlist, fingerprints, control, "
            "tls, network, asn, auth, server, api, limits, probes, ingest, flags, census, log)",
        ),
        (
            "control:\n  colour: blue\n",
            "control.colour: unknown key (known: control.resolver, control.enabled, "
            "control.concurrency, control.cache_seconds, control.max_targets, control.public, "
            "control.rate_per_probe_per_minute, control.rate_per_minute, "
            "control.addresses_per_family, control.connections_per_request, "
            "control.connections_in_flight, control.dials_per_request)",
        ),
        ("control: [1, 2]\n", "control: expected a mapping of keys"),
        ("listen: [unclosed\n", "line 2: not valid YAML"),
        ("- a list\n", "file: expected a mapping of keys"),
    ],
)
def test_bad_values_name_file_key_and_reason(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/collector.yaml")


def test_command_line_overrides_win(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("listen: 127.0.0.1:9000\n")
    cfg = load_config(
        str(path), {"listen": "127.0.0.1:9001", "network.allow_networks": ["10.0.0.0/8"]}
    )
    assert cfg.listen == "127.0.0.1:9001"
    assert cfg.allow_networks == ("10.0.0.0/8",)
