"""probe.config: defaults, overrides, one test per rejection, resolvers, networks, busy windows."""

import datetime
import ipaddress
import re
import textwrap
from pathlib import Path

import pytest

from probe import config
from probe.config import BusyWindow, ConfigError
from probe.watchlist import PACKAGED_WATCHLIST

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "probe.example.yaml"
UTC = datetime.UTC


def write(tmp_path, text, name="probe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path, text, overrides=None):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config.load_config(str(path), overrides)
    assert str(e.value) == f"{e.value.file}: {e.value.key}: {e.value.why}"
    assert "\n" not in str(e.value)
    return str(e.value).removeprefix(f"{path}: ")


def test_defaults_without_a_file():
    cfg = config.load_config(None)
    assert cfg.source is None
    assert cfg.state_dir == config.default_state_dir()
    assert cfg.watchlist == str(PACKAGED_WATCHLIST)
    assert (cfg.collector.url, cfg.control.url, cfg.control.enabled) == (None, None, True)
    assert (cfg.dns.resolver, cfg.tls.ca_file, cfg.network.cc) == (None, None, "FR")
    t = cfg.timeouts
    assert (t.dns, t.tcp, t.tls, t.http, t.target) == (5, 5, 5, 10, 30)
    assert cfg.concurrency == 8
    assert (cfg.schedule.interval_seconds, cfg.schedule.jitter_seconds) == (3600, 300)
    assert cfg.budget.max_bytes_per_cycle == 50 * 1024 * 1024
    assert (cfg.spool.max_records, cfg.spool.max_age_days, cfg.upload.batch_size) == (
        100_000,
        30,
        100,
    )
    assert (cfg.log.format, cfg.log.level, cfg.fingerprints) == ("text", "info", ())


def test_example_loads_and_documents_every_key():
    cfg = config.load_config(str(EXAMPLE))
    assert cfg.source == str(EXAMPLE)
    assert cfg.budget.max_bytes_per_cycle == 50 * 1024 * 1024
    weekend, midweek = cfg.schedule.busy_windows
    assert weekend.days == ("sat", "sun") and weekend.start == datetime.time(13, 0)
    assert midweek.days == ("tue", "wed") and midweek.tz == "Europe/Paris"
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in config.KEYS:
        leaf = key.rsplit(".", 1)[-1]
        assert re.search(rf"^\s*#?\s*{leaf}:", text, re.M), f"{key} is not in the example"


def test_file_values_and_derived_defaults(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "wl.yaml").write_text("services: []")
    path = write(
        tmp_path,
        """
        collector: {url: "https://collector.test/"}
        dns: {resolver: "[2001:db8::53]:5353"}
        tls: {ca_file: ca.pem}
        network: {allow_networks: [10.200.0.0/16, "fd00:200::/48"], asn: 3215, name: Orange,
                  cc: fr}
        timeouts: {dns: 2.5, target: "60"}
        state_dir: state
        schedule: {busy_windows: [{start: 20:45, end: 23:00, interval_seconds: 300}]}
        budget: {max_bytes_per_cycle: 512 KiB}
        log: {format: JSON, level: debug}
        """,
    )
    cfg = config.load_config(str(path))
    assert cfg.control.url == "https://collector.test/api/v1/control"
    assert cfg.watchlist == "collector"
    assert cfg.dns.resolver == "[2001:db8::53]:5353"
    assert cfg.tls.ca_file == str(tmp_path / "ca.pem")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.network.allow_networks == (
        ipaddress.ip_network("10.200.0.0/16"),
        ipaddress.ip_network("fd00:200::/48"),
    )
    assert (cfg.network.asn, cfg.network.name, cfg.network.cc) == (3215, "Orange", "FR")
    assert (cfg.timeouts.dns, cfg.timeouts.tcp, cfg.timeouts.target) == (2.5, 5, 60)
    window = cfg.schedule.busy_windows[0]
    assert (window.start, window.end, window.days) == (
        datetime.time(20, 45),
        datetime.time(23, 0),
        config.DAYS,
    )
    assert cfg.budget.max_bytes_per_cycle == 512 * 1024
    assert (cfg.log.format, cfg.log.level) == ("json", "debug")


def test_overrides_win_and_none_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "extra.pem").write_text("x")
    monkeypatch.chdir(tmp_path / "cwd")
    path = write(tmp_path, "concurrency: 4\ncontrol: {url: 'https://a.test/c'}\n")
    cfg = config.load_config(
        str(path),
        {
            "concurrency": "16",
            "control.enabled": False,
            "control.url": None,
            "tls.ca_file": "extra.pem",
            "network.allow_networks": ["10.200.0.0/16"],
            "timeouts.dns": 1.5,
            "dns.resolver": "127.0.0.53",
        },
    )
    assert cfg.concurrency == 16 and cfg.control.enabled is False
    assert cfg.control.url == "https://a.test/c"
    assert cfg.tls.ca_file == str(tmp_path / "cwd" / "extra.pem")
    assert cfg.timeouts.dns == 1.5 and cfg.dns.resolver == "127.0.0.53"


def test_a_bad_override_names_the_command_line(tmp_path):
    path = write(tmp_path, "concurrency: 4\n")
    with pytest.raises(ConfigError) as e:
        config.load_config(str(path), {"concurrency": "lots"})
    assert (
        str(e.value)
        == "command line: concurrency: must be a whole number from 1 to 256, got 'lots'"
    )
    with pytest.raises(
        ConfigError,
        match=r"^command line: dns\.server: unknown key \(known: dns\.resolver, "
        r"dns\.resolvers, dns\.whoami\)$",
    ):
        config.load_config(None, {"dns.server": "1.1.1.1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeouts: {dns: abc}", "timeouts.dns: must be a positive number, got 'abc'"),
        ("timeouts: {http: 0}", "timeouts.http: must be a positive number, got 0"),
        ("timeouts: {tcp: -1}", "timeouts.tcp: must be a positive number, got -1"),
        ("timeouts: {tls: true}", "timeouts.tls: must be a positive number, got True"),
        ("timeouts: {target: .nan}", "timeouts.target: must be a positive number, got nan"),
        (
            "timeouts: {dsn: 3}",
            "timeouts.dsn: unknown key (known: timeouts.dns, timeouts.tcp, "
            "timeouts.tls, timeouts.http, timeouts.target)",
        ),
        ("timeouts: 5", "timeouts: expected a mapping of keys"),
        (
            "colour: red",
            "colour: unknown key (known: state_dir, collector, control, watchlist, dns, "
            "tls, network, timeouts, concurrency, schedule, budget, spool, upload, census, "
            "diagnostics, metrics, log, fingerprints, loop)",
        ),
        ("concurrency: 0", "concurrency: must be a whole number from 1 to 256, got 0"),
        ("concurrency: 257", "concurrency: must be a whole number from 1 to 256, got 257"),
        ("concurrency: 2.5", "concurrency: must be a whole number from 1 to 256, got 2.5"),
        ("network: {asn: -3}", "network.asn: must be a whole number from 1 to 4294967295, got -3"),
        ("network: {cc: FRA}", "network.cc: must be a 2-letter country code, got 'FRA'"),
        ("network: {name: ''}", "network.name: must be a non-empty string, got ''"),
        (
            "network: {allow_networks: [10.0.0.0/8, 10.0.0.0/33]}",
            "network.allow_networks[1]: '10.0.0.0/33' is not a network",
        ),
        (
            "network: {allow_networks: [10.0.0.1/8]}",
            "network.allow_networks[0]: '10.0.0.1/8' is not a network (10.0.0.1/8 has host bits",
        ),
        ("network: {allow_networks: 8}", "network.allow_networks: must be a list of networks"),
        ("dns: {resolver: dns.google}", "dns.resolver: 'dns.google' is not an IP address"),
        ("dns: {resolver: '1.1.1.1:0'}", "dns.resolver: port 0 is not from 1 to 65535"),
        (
            "dns: {resolver: [1, 2]}",
            "dns.resolver: expected [NAME=]IP[:PORT], [NAME=]tls://IP[:PORT][#HOSTNAME], ",
        ),
        ("dns: {resolvers: []}", "dns.resolvers: must be a non-empty list of resolver paths"),
        ("dns: {resolvers: ['a=1.1.1.1', 'a=8.8.8.8']}", "dns.resolvers[1]: the name 'a' is given"),
        ("dns: {resolvers: ['ftp://x']}", "dns.resolvers[0]: 'ftp://x': only tls:// and https://"),
        ("dns: {resolvers: ['tls://dns.google']}", "dns.resolvers[0]: 'dns.google' is not an IP"),
        ("dns: {whoami: 'not a name'}", "dns.whoami: must be a domain name or off, got 'not a"),
        ("tls: {ca_file: missing.pem}", "tls.ca_file: no such file: "),
        ("collector: {url: 'ftp://c.test'}", "collector.url: must be an http or https URL"),
        ("control: {enabled: maybe}", "control.enabled: must be true or false, got 'maybe'"),
        ("watchlist: collector", "watchlist: 'collector' needs collector.url"),
        ("watchlist: nowhere.yaml", "watchlist: no such file: "),
        (
            "schedule: {interval_seconds: 60, jitter_seconds: 60}",
            "schedule.jitter_seconds: must be less than schedule.interval_seconds",
        ),
        ("schedule: {jitter_seconds: -1}", "schedule.jitter_seconds: must be a number, 0 or more"),
        ("schedule: {busy_windows: {start: '20:00'}}", "schedule.busy_windows: must be a list of"),
        (
            "schedule: {busy_windows: [{start: '25:00', end: '23:00', interval_seconds: 60}]}",
            "schedule.busy_windows[0].start: must be a time \"HH:MM\", got '25:00'",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '20:00', interval_seconds: 60}]}",
            "schedule.busy_windows[0].end: must differ from start",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '23:00'}]}",
            "schedule.busy_windows[0].interval_seconds: missing",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '23:00', interval_seconds: 0}]}",
            "schedule.busy_windows[0].interval_seconds: must be a positive number, got 0",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '23:00', interval_seconds: 60, "
            "tz: Mars/Olympus}]}",
            "schedule.busy_windows[0].tz: unknown time zone 'Mars/Olympus'",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '23:00', interval_seconds: 60, "
            "days: [sat, funday]}]}",
            "schedule.busy_windows[0].days: 'funday' is not a day",
        ),
        (
            "schedule: {busy_windows: [{start: '20:00', end: '23:00', interval_seconds: 60, "
            "every: week}]}",
            "schedule.busy_windows[0].every: unknown key (known: days, start, end",
        ),
        (
            "budget: {max_bytes_per_cycle: lots}",
            "budget.max_bytes_per_cycle: must be a size in bytes",
        ),
        (
            "budget: {max_bytes_per_cycle: 0}",
            "budget.max_bytes_per_cycle: must be more than 0 bytes",
        ),
        ("spool: {max_records: 0}", "spool.max_records: must be a whole number from 1 to"),
        ("spool: {max_age_days: 0}", "spool.max_age_days: must be a positive number, got 0"),
        (
            "upload: {batch_size: 20000}",
            "upload.batch_size: must be a whole number from 1 to 10000",
        ),
        ("log: {format: xml}", "log.format: must be one of text, json, got 'xml'"),
        ("log: {level: LOUD}", "log.level: must be one of debug, info, warning, error, got 'LOUD'"),
        ("fingerprints: [nope.yaml]", "fingerprints[0]: no such file: "),
        ("- a\n- b\n", "file: expected a mapping of keys"),
        ("timeouts:\n  dns: 5\n tcp: 5\n", "line 3: not valid YAML ("),
    ],
)
def test_rejections_name_file_key_and_reason(tmp_path, text, message):
    assert error_of(tmp_path, text).startswith(message)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        config.load_config(str(tmp_path / "absent.yaml"))
    assert e.value.key == "file" and str(e.value).startswith(f"{tmp_path}/absent.yaml: file: ")


def test_empty_file_gives_defaults(tmp_path):
    cfg = config.load_config(str(write(tmp_path, "# nothing\n")))
    assert cfg.concurrency == 8 and cfg.source == str(tmp_path / "probe.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.9.9.9", ("9.9.9.9", 53)),
        (" 127.0.0.1:5353 ", ("127.0.0.1", 5353)),
        ("2001:db8::1", ("2001:db8::1", 53)),
        ("[2001:0db8::1]:853", ("2001:db8::1", 853)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_parse_resolver(text, expected):
    assert config.parse_resolver(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("resolver.example.net", "'resolver.example.net' is not an IP address"),
        ("1.2.3.4:70000", "port 70000 is not from 1 to 65535"),
        ("[::1:53", "expected IP, IP:PORT or [IPv6]:PORT, got '[::1:53'"),
        ("1.2.3.4:", "'1.2.3.4:' is not an IP address"),
    ],
)
def test_parse_resolver_rejects(text, why):
    with pytest.raises(ValueError) as e:
        config.parse_resolver(text)
    assert str(e.value) == why


def test_parse_allow_networks():
    assert config.parse_allow_networks(["10.200.0.0/16", " fd00:200::/48"]) == (
        ipaddress.ip_network("10.200.0.0/16"),
        ipaddress.ip_network("fd00:200::/48"),
    )
    assert config.parse_allow_networks("192.0.2.0/24") == (ipaddress.ip_network("192.0.2.0/24"),)
    with pytest.raises(ValueError, match=r"'300\.0\.0\.0/8' is not a network"):
        config.parse_allow_networks(["10.0.0.0/8", "300.0.0.0/8"])


def test_system_resolver(tmp_path):
    conf = write(
        tmp_path,
        """
        # generated by NetworkManager
        search lan
        options edns0
        nameserver 2001:0db8::53
        nameserver 192.0.2.53
        """,
        "resolv.conf",
    )
    assert config.system_resolver(str(conf)) == "2001:db8::53"
    empty = write(tmp_path, "search lan\n", "empty.conf")
    with pytest.raises(ConfigError, match=r"empty\.conf: nameserver: no nameserver line$"):
        config.system_resolver(str(empty))
    bad = write(tmp_path, "nameserver localhost\n", "bad.conf")
    with pytest.raises(ConfigError, match=r"bad\.conf: nameserver: 'localhost' is not an address"):
        config.system_resolver(str(bad))
    with pytest.raises(ConfigError, match=r"absent\.conf: file: cannot read it"):
        config.system_resolver(str(tmp_path / "absent.conf"))


def test_default_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.default_state_dir({"STATE_DIRECTORY": "/run/x:/run/y"}, 1000) == Path("/run/x")
    assert config.default_state_dir({}, 0) == Path("/var/lib/surblocage-probe")
    assert config.default_state_dir({"XDG_STATE_HOME": "/xdg"}, 1000) == Path(
        "/xdg/surblocage-probe"
    )
    assert config.default_state_dir({}, 1000) == tmp_path / ".local/state/surblocage-probe"


def test_busy_window_in_its_time_zone_across_midnight():
    # Saturday 15 March 2025; Paris is UTC+1 then
    w = BusyWindow(datetime.time(20, 0), datetime.time(1, 0), 300, ("sat",), "Europe/Paris")
    at = lambda *a: datetime.datetime(*a, tzinfo=UTC)  # noqa: E731
    assert w.covers(at(2025, 3, 15, 19, 30))  # Sat 20:30 Paris
    assert not w.covers(at(2025, 3, 15, 18, 30))  # Sat 19:30 Paris
    assert w.covers(at(2025, 3, 15, 23, 30))  # Sun 00:30 Paris, the window began Saturday
    assert not w.covers(at(2025, 3, 16, 0, 30))  # Sun 01:30 Paris
    assert not w.covers(at(2025, 3, 14, 20, 0))  # Fri 21:00 Paris
    assert not w.covers(at(2025, 3, 16, 19, 30))  # Sun 20:30 Paris: Sunday is not listed
    schedule = config.ScheduleConfig(3600, 300, (w,))
    assert schedule.interval_at(at(2025, 3, 15, 19, 30)) == 300
    assert schedule.interval_at(at(2025, 3, 15, 12, 0)) == 3600


def test_day_ranges_wrap_around_the_week(tmp_path):
    path = write(
        tmp_path,
        """
        schedule:
          busy_windows:
            - {days: [fri-mon], start: "18:00", end: "23:00", interval_seconds: 120}
        """,
    )
    (w,) = config.load_config(str(path)).schedule.busy_windows
    assert w.days == ("mon", "fri", "sat", "sun")
