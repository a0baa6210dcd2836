"""probe.settings, the layer both configurations share: precedence of file, environment and
command line, the environment's own rejections, and the command line's overrides."""

import argparse
import textwrap

import pytest

from collector import config as collector_config
from probe import config, kinds, settings
from probe.settings import ConfigError, Key


def write(tmp_path, text, name="probe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_environment_wins_over_the_file_and_loses_to_the_command_line(tmp_path):
    path = write(tmp_path, "timeouts: {dns: 1, tcp: 2, tls: 3}\n")
    env = {
        "SURBLOCAGE_PROBE_TIMEOUTS_TCP": "20",
        "SURBLOCAGE_PROBE_TIMEOUTS_TLS": "30",
        "SURBLOCAGE_PROBE_NETWORK_ALLOW_NETWORKS": "[10.0.0.0/8, 192.0.2.0/24]",
        "SURBLOCAGE_PROBE_DNS_RESOLVER": "",  # empty: not given
        "SURBLOCAGE_DEMO_PROBE_ARGS": "--once",  # not the probe's prefix: ignored
    }
    cfg = config.load_config(str(path), {"timeouts.tls": 300}, env)
    assert (cfg.timeouts.dns, cfg.timeouts.tcp, cfg.timeouts.tls) == (1, 20, 300)
    assert [str(n) for n in cfg.network.allow_networks] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert cfg.dns.resolver is None


def test_a_bad_environment_value_names_its_variable_and_key():
    env = {"SURBLOCAGE_PROBE_TIMEOUTS_DNS": "abc"}
    with pytest.raises(ConfigError) as e:
        config.load_config(None, None, env)
    assert str(e.value) == (
        "environment SURBLOCAGE_PROBE_TIMEOUTS_DNS: timeouts.dns: "
        "must be a positive number, got 'abc'"
    )


def test_an_unknown_variable_of_the_programs_prefix_is_rejected():
    env = {"SURBLOCAGE_COLLECTOR_LOG_LEVLE": "debug"}
    with pytest.raises(ConfigError) as e:
        collector_config.load_config(None, None, env)
    assert str(e.value).startswith(
        "environment: SURBLOCAGE_COLLECTOR_LOG_LEVLE: unknown variable (known: "
        "SURBLOCAGE_COLLECTOR_LISTEN, SURBLOCAGE_COLLECTOR_DATABASE_URL, "
    )
    assert "SURBLOCAGE_COLLECTOR_LOG_LEVEL)" in str(e.value)


def test_the_collector_reads_its_variables_too():
    env = {"SURBLOCAGE_COLLECTOR_LOG_LEVEL": "DEBUG", "SURBLOCAGE_COLLECTOR_CONTROL_ENABLED": "no"}
    cfg = collector_config.load_config(None, {"log.level": "warning"}, env)
    assert (cfg.log_level, cfg.control_enabled) == ("warning", False)
    assert collector_config.load_config(None, None, env).log_level == "debug"


def test_both_programs_say_the_same_thing_the_same_way(tmp_path):
    errors = []
    for load in (config.load_config, collector_config.load_config):
        with pytest.raises(ConfigError) as e:
            load(str(write(tmp_path, "log: {level: loud}\n")))
        errors.append(str(e.value))
    why = "log.level: must be one of debug, info, warning, error, got 'loud'"
    assert errors == [f"{tmp_path}/probe.yaml: {why}"] * 2


def test_keys_that_share_a_variable_are_refused():
    with pytest.raises(ValueError, match="share one environment variable"):
        settings.Table("X_", [Key("a.b_c", kinds.text), Key("a_b.c", kinds.text)])


def test_overrides_take_the_options_given_and_leave_the_others_to_the_file():
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--resolver")
    settings.add_off_switch(parser, "--no-control", "control_enabled", help="no control")
    options = {
        "timeout": ("timeouts.dns", "timeouts.tcp"),
        "resolver": "dns.resolver",
        "control_enabled": "control.enabled",
    }
    given = parser.parse_args(["--timeout", "2", "--no-control"])
    assert settings.overrides_from(given, options) == {
        "timeouts.dns": 2.0,
        "timeouts.tcp": 2.0,
        "control.enabled": False,
    }
    assert settings.overrides_from(parser.parse_args([]), options) == {}
