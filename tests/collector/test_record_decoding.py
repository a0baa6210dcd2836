"""The collector's fast record decoder (msgspec) accepts and refuses exactly what
``Measurement.from_dict`` does, with the same message naming the field at fault."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from collector import ingest
from probe import record
from tests.support.records import record_id

# every key of schema 1 given a value, nested lists and optional blocks included
FULL = record.Measurement(
    id=record_id(7),
    probe=record.ProbeInfo("p", "surblocage/0.1.0", 3215, "Orange", "FR", "192.168.1.1"),
    target=record.Target("mycanal", "https://www.canalplus.com/", "www.canalplus.com", "vod"),
    started_at="2026-03-01T20:00:00Z",
    duration_ms=412.5,
    dns=[
        record.DNSResult(
            "192.168.1.1",
            "A",
            None,
            12.0,
            "NOERROR",
            ["104.16.1.1"],
            ["cdn.example"],
            [record.EDE(16, "Censored")],
            "udp",
            ["127.0.0.1"],
            "www.canalplus.com",
        )
    ],
    tcp=[record.TCPResult("104.16.1.1", 443, None, 20)],
    tls=[
        record.TLSResult(
            "104.16.1.1",
            443,
            "www.canalplus.com",
            None,
            40.0,
            "TLSv1.3",
            True,
            False,
            "CN=www.canalplus.com",
            "CN=R3",
            "ab" * 32,
        )
    ],
    http=record.HTTPResult(
        "https://www.canalplus.com/",
        None,
        90.0,
        200,
        1234,
        "cd" * 32,
        "CANAL+",
        {"server": "cloudflare"},
        [record.Redirect("http://canalplus.com/", 301, "https://x/")],
        "104.16.1.1",
        False,
        "<html>",
    ),
    control=record.Control(
        dns=[record.DNSResult("9.9.9.9", "A", None, 8.0, "NOERROR", ["104.16.1.1"])],
        tcp=[record.TCPResult("104.16.1.1", 443, None, 9.0)],
        tls=[],
        http=record.HTTPResult("https://www.canalplus.com/", None, 50.0, 200),
        failure=None,
        measured_at="2026-03-01T20:00:01Z",
    ),
    verdict=record.Verdict("blocked", "dns", "bogon"),
).to_dict()

# values of every JSON kind, each wrong somewhere and right somewhere else
ODD = [None, True, False, 0, 3, -1, 3.5, 2**70, "", "x", "A", [], ["x"], {}, {"a": "b"}]


def paths(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a decoded JSON value: keys of objects and indexes of arrays."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        yield (*at, k)
        if isinstance(v, dict | list) and v:
            yield from paths(v, (*at, k))


def changed(doc: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    if new is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return out


DELETE = object()


def outcome(decode: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", decode(data)
    except record.MalformedRecord as e:
        return "refused", str(e)


def variants() -> Iterator[dict[str, Any]]:
    yield FULL
    yield {**FULL, "schema": True}  # == 1 in Python: both decoders compare the same way
    yield {**FULL, "newer_key": {"x": [1, 2]}}
    for path in paths(FULL):
        yield changed(FULL, path, DELETE)
        for new in ODD:
            yield changed(FULL, path, new)


def test_fast_decoder_agrees_with_from_dict_on_every_change_of_a_full_record() -> None:
    checked = refused = 0
    for data in variants():
        fast, slow = outcome(ingest.parse_record, data), outcome(record.Measurement.from_dict, data)
        assert fast == slow, json.dumps(data)[:300]
        checked += 1
        refused += fast[0] == "refused"
    # the corpus exercises both sides: most changes are refused, some are accepted
    assert checked > 1000
    assert 0.3 * checked < refused < checked


def test_a_record_accepted_by_both_keeps_the_same_values() -> None:
    fast = ingest.parse_record(FULL)
    assert fast == record.Measurement.from_dict(FULL)
    assert fast.to_dict() == FULL


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"records": [], "n": NaN}', "NaN is not JSON"),
        (b'{"records": [], "n": Infinity}', "Infinity is not JSON"),
        (b'{"records": [], "n": 1e999}', "past a double"),
        (b'{"records": [], "s": "\\ud800"}', "an unpaired surrogate"),
        (b"\xff\xfe{\x00}\x00", "UTF-16"),
    ],
)
def test_the_body_must_be_json_as_rfc_8259_has_it(raw: bytes, why: str) -> None:
    with pytest.raises(ingest.BatchError, match=r"^body: not valid JSON \(") as e:
        ingest.decode_body(raw)
    assert e.value.status == 400, why


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert ingest.decode_body(b'\xef\xbb\xbf{"records": []}') == {"records": []}
