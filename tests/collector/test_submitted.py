"""collector.submitted: a batch decoded as json.loads decodes it, each record's text kept and
stored with its verdict and probe block replaced."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from collector import submitted
from tests.collector.harness import Collector, record

BODIES = [
    b'{"records":[]}',
    b' {"records" : [ {"a":1} , {"b":[1,2,{"c":"}]"}]} ] , "x": {"y": [] } } \n',
    b'{"records":[{"a":NaN, "b": -0.5e3, "c": "\\u00e9\\ud83d\\ude00", "d": null}]}',
    b'{"records": 3, "records":[{"a":1, "a":2}]}',
    b'{"records":[{"verdict":1,"x":2,"verdict":3}]}',
]
# what the scanner leaves to json.loads: other shapes, other encodings, and broken JSON
OTHERS = [
    b"[]",
    b'{"records":{}}',
    b'{"records":[1]}',
    b'{"records":[{"a":1}], "records": 3}',
    b'\xef\xbb\xbf{"records":[]}',
    '{"records":[{"a":1}]}'.encode("utf-16"),
]
BROKEN = [b"", b"{", b'{"records":[{"a":1},]}', b'{"records":[{"a":1,}]}', b'{"a":1}{', b"\xff{}"]


def outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(raw)
    except ValueError as e:
        return "error", (type(e), str(e))


@pytest.mark.parametrize("raw", BODIES + OTHERS + BROKEN)
def test_a_body_decodes_to_what_json_loads_gives_or_fails_as_it_does(raw: bytes) -> None:
    mine = outcome(lambda r: submitted.decode(r)[0], raw)
    assert repr(mine) == repr(outcome(json.loads, raw))  # repr: NaN is not equal to itself


@pytest.mark.parametrize("raw", BODIES)
def test_each_record_document_is_its_value_with_members_replaced(raw: bytes) -> None:
    body, texts = submitted.decode(raw)
    assert texts is not None and len(texts) == len(body["records"])
    for value, text in zip(body["records"], texts, strict=True):
        replaced = {"verdict": {"status": "ok"}, "probe": {"id": "p-1"}}
        document = json.loads(text.document(replaced))
        assert repr(document) == repr({**value, **replaced})
        assert list(document)[: len(value)] == list(value)  # the members keep their order


@pytest.mark.parametrize("raw", OTHERS)
def test_other_shapes_come_without_texts(raw: bytes) -> None:
    assert submitted.decode(raw)[1] is None


async def test_a_record_is_stored_as_sent_with_the_collectors_verdict_and_probe(
    collector: Collector,
) -> None:
    probe_id, token = await collector.register(asn=3215, network="Orange")
    sent = record(1)
    sent["added_by_a_newer_probe"] = {"note": "kept", "n": [1, 2.5]}
    sent["verdict"] = {"status": "ok", "method": None, "detail": None, "blockpage": None}
    raw = json.dumps({"records": [sent]}, indent=1).encode()  # spaced out: not re-encoded
    assert (await collector.submit(token, raw))[0] == 200
    [item] = await collector.query_all()
    assert item["added_by_a_newer_probe"] == {"note": "kept", "n": [1, 2.5]}
    assert item["verdict"]["status"] == "blocked"  # the collector's, not the one sent
    assert item["probe_verdict"]["status"] == "ok"
    assert item["probe"] == {**sent["probe"], "id": probe_id, "asn": 3215, "network": "Orange"}
    expected = {**sent, "probe": item["probe"], "verdict": item["verdict"]}
    assert {k: v for k, v in item.items() if k not in ("probe_verdict", "received_at")} == expected
    with collector.store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT doc FROM measurements")).scalar_one()
    assert '\n   "added_by_a_newer_probe": {\n    "note": "kept",' in stored  # as sent
