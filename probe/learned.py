"""Block signatures the collector learned (GET /api/v1/signatures), kept for `check`.

`run` fetches them with the watchlist and keeps them in the state dir (signatures.json) with
the network they were fetched for: the probe's declared ASN (network.asn), else the one the
collector's GET /api/v1/whoami answers for the line. `check` applies those of its network (its
declared ASN, else the file's) as DNS signatures of their one resolver path: an address as a
decisive `dns_address` signature named `learned:<id>`; an rcode as a `dns_rcode` one, which never
decides alone (a name that does not exist gets NXDOMAIN too: docs/spec.md, "Learned block
signatures"). The collector's answer is input from the network: bounded and checked here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from probe.fingerprints import Fingerprint, FingerprintSet

CACHE = "signatures.json"
MAX_SIGNATURES = 1000
ID_RE = re.compile(r"[0-9a-f]{1,64}")
RCODE_RE = re.compile(r"(NXDOMAIN|REFUSED|SERVFAIL|NODATA)(\+ede:\d{1,5}){0,2}")
MAX_NAME_CHARS = 200
SOURCE = "the collector's GET /api/v1/signatures"


class SignaturesMalformed(ValueError):
    """The collector's answer is not a list of signatures as docs/spec.md describes them."""


def parse(doc: Any) -> list[dict[str, Any]]:
    """Return the signatures of a GET /api/v1/signatures answer; SignaturesMalformed if not."""
    items = doc.get("signatures") if isinstance(doc, dict) else None
    if not isinstance(items, list) or len(items) > MAX_SIGNATURES:
        raise SignaturesMalformed(f"expected a list 'signatures' of at most {MAX_SIGNATURES}")
    return [_item(x, i) for i, x in enumerate(items)]


def _item(x: Any, i: int) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise SignaturesMalformed(f"signatures[{i}]: expected an object")
    sid, asn, resolver, kind, value = (x.get(k) for k in ("id", "asn", "resolver", "kind", "value"))
    if not isinstance(sid, str) or not ID_RE.fullmatch(sid):
        raise SignaturesMalformed(f"signatures[{i}].id: expected hex digits")
    if isinstance(asn, bool) or not isinstance(asn, int) or not 0 <= asn < 2**32:
        raise SignaturesMalformed(f"signatures[{i}].asn: expected an AS number")
    if not isinstance(resolver, str) or not 0 < len(resolver) <= MAX_NAME_CHARS:
        raise SignaturesMalformed(f"signatures[{i}].resolver: expected a path's name")
    if kind == "address" and isinstance(value, str) and _is_ip(value):
        pass
    elif not (kind == "rcode" and isinstance(value, str) and RCODE_RE.fullmatch(value)):
        raise SignaturesMalformed(f"signatures[{i}]: {kind!r} {value!r} is not a signature")
    return {"id": sid, "asn": asn, "resolver": resolver, "kind": kind, "value": value}


def save(state_dir: Path, signatures: list[dict[str, Any]], asn: int | None) -> None:
    """Keep the signatures and the network they were fetched for (atomically, owner only)."""
    data = json.dumps({"asn": asn, "signatures": signatures}, indent=1).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{CACHE}.", dir=state_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, state_dir / CACHE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(state_dir: Path, asn: int | None) -> FingerprintSet:
    """Return the kept signatures of the probe's network as fingerprints; none when no file
    (or an unreadable one: `check` goes on without them). ``asn``: the declared network."""
    try:
        doc = json.loads((state_dir / CACHE).read_bytes())
        items = parse(doc)
    except (OSError, ValueError):
        return FingerprintSet()
    fetched_for = doc.get("asn")
    network = asn if asn is not None else fetched_for
    if network is None:
        return FingerprintSet()
    return fingerprints(items, network)


def fingerprints(items: list[dict[str, Any]], asn: int) -> FingerprintSet:
    """Return the signatures of network ``asn`` as fingerprints of their resolver path."""
    out = []
    for x in items:
        if x["asn"] != asn:
            continue
        name, paths = f"learned:{x['id']}", (x["resolver"],)
        if x["kind"] == "address":
            fp = Fingerprint(
                name, "dns_address", x["value"], "exact", "confirmed", paths=paths, source=SOURCE
            )
        else:  # an rcode, its EDE codes aside: never decisive alone
            rcode = x["value"].split("+", 1)[0]
            fp = Fingerprint(name, "dns_rcode", rcode, "", "likely", paths=paths, source=SOURCE)
        out.append(fp)
    return FingerprintSet(tuple(out))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
