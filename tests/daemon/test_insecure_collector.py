"""An http:// collector that is not on this machine is refused unless allowed by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from probe import cli, config


@pytest.mark.parametrize(
    "url",
    [
        "http://collector.example.org",
        "http://192.0.2.7:8080",
        "http://[2001:db8::1]/",
        "http://10.0.0.1",
    ],
)
def test_run_refuses_a_clear_text_collector_on_the_network(
    tmp_path: Path, capsys: Any, url: str
) -> None:
    argv = ["run", "--once", "--collector", url, "--state-dir", str(tmp_path / "s")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "collector.url: http:// would send the probe's token" in err
    assert "collector.allow_insecure: true" in err
    assert not (tmp_path / "s" / "spool.db").exists()  # refused before anything is opened


@pytest.mark.parametrize(
    "url",
    [
        "https://collector.example.org",
        "http://127.0.0.1:8080",
        "http://127.9.9.9",
        "http://[::1]:8080/",
        "http://localhost:8080",
        "http://api.localhost",
    ],
)
def test_https_and_loopback_collectors_are_accepted(url: str) -> None:
    cfg = config.load_config(None, {"collector.url": url}, environ={})
    assert cfg.collector.url == url and not cfg.collector.allow_insecure


def test_allow_insecure_lets_a_clear_text_collector_through(tmp_path: Path) -> None:
    file = tmp_path / "probe.yaml"
    file.write_text("collector:\n  url: http://collector.lan:8080\n  allow_insecure: true\n")
    cfg = config.load_config(file, environ={})
    assert (cfg.collector.url, cfg.collector.allow_insecure) == ("http://collector.lan:8080", True)
    env = {"SURBLOCAGE_PROBE_COLLECTOR_ALLOW_INSECURE": "true"}
    cfg = config.load_config(None, {"collector.url": "http://192.0.2.7"}, environ=env)
    assert cfg.collector.allow_insecure


def test_the_refusal_blames_the_file_that_set_the_url(tmp_path: Path) -> None:
    file = tmp_path / "probe.yaml"
    file.write_text("collector:\n  url: http://collector.lan:8080\n")
    with pytest.raises(config.ConfigError) as e:
        config.load_config(file, environ={})
    assert str(e.value).startswith(f"{file}: collector.url: http:// would send")
