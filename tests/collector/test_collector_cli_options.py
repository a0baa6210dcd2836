"""The collector's command line: serve's logging options and port 0 reach the configuration."""

from __future__ import annotations

import pytest

from collector import cli
from collector.config import load_config
from probe.settings import overrides_from


def test_log_options_override_the_configuration() -> None:
    args = cli.build_parser().parse_args(
        ["serve", "--log-format", "json", "--log-level", "debug", "--listen", "127.0.0.1:0"]
    )
    overrides = overrides_from(args, cli.OPTIONS)
    assert overrides == {"log.format": "json", "log.level": "debug", "listen": "127.0.0.1:0"}
    cfg = load_config(None, overrides)
    assert (cfg.log_format, cfg.log_level, cfg.listen) == ("json", "debug", "127.0.0.1:0")


def test_a_bad_log_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--log-format", "xml"]) == 2
    err = capsys.readouterr().err
    assert "argument --log-format: invalid choice: 'xml'" in err
    assert err.count("\n") == 1


def test_export_filters_are_the_query_apis_without_paging() -> None:
    assert set(cli.EXPORT_FILTERS) == {
        "service",
        "domain",
        "asn",
        "network",
        "status",
        "method",
        "probe_id",
        "since",
        "until",
        "order",
    }
    assert set(cli.FILTER_HELP) == {*cli.EXPORT_FILTERS, "category", "state", "resolver"}
