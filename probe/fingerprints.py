"""Block-page signatures (configs/fingerprints.yaml, or OONI's CSV): load, check, match; pure.

Signatures are data. Each names what it matches (``kind``: dns_address, dns_cname, dns_rcode,
dns_ede, http_body, http_header, http_status, http_title, tls_cert) and how (``match``: exact,
contains, prefix, regex, cidr, suffix). Matching returns the first signature that fits, in this
order: false positives first (a corporate filter is not an ISP block, so the caller must learn of
it before any block signature), then "confirmed" signatures, then "likely" ones; file order
within each. A bad file raises `FingerprintError` naming the file, the key and the reason;
regexes, addresses and networks are compiled at load time.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probe.record import EDE

# configs/ sits next to the package in the source tree (the editable install); see the report
# shipped inside the package (configs/fingerprints.yaml links here), so a wheel carries it
PACKAGED_FINGERPRINTS = Path(__file__).resolve().parent / "data" / "fingerprints.yaml"

# kind -> the matches it accepts, the default first
KINDS: dict[str, tuple[str, ...]] = {
    "dns_address": ("exact", "cidr"),
    "dns_cname": ("suffix", "exact", "prefix", "contains", "regex"),
    "dns_rcode": ("exact",),
    "dns_ede": ("exact", "contains", "regex"),  # exact: the EDE code; otherwise its text
    "http_body": ("contains", "exact", "prefix", "regex"),
    "http_header": ("contains", "exact", "prefix", "regex"),  # pattern "Header-Name: value"
    "http_status": ("exact",),
    "http_title": ("contains", "exact", "prefix", "regex"),
    "tls_cert": ("contains", "exact", "regex"),  # tried on the subject and on the issuer
}
CONFIDENCES = ("confirmed", "likely")
# NODATA: NOERROR with an empty answer (SFR in 2019, background-france.md §1.3)
RCODES = ("NXDOMAIN", "REFUSED", "SERVFAIL", "NODATA")
ENTRY_KEYS = tuple(
    "name kind pattern match asns country confidence false_positive source notes".split()
)
OONI_COLUMNS = tuple(
    "name scope other_names location_found pattern_type pattern confidence_no_fp"
    " expected_countries source exp_url notes".split()
)
OONI_MATCH = {"full": "exact", "prefix": "prefix", "contains": "contains", "regexp": "regex"}
OONI_FALSE_POSITIVE = ("fp", "inst")  # "inst": a school or office filter, not the ISP
COUNTRY_RE = re.compile(r"[A-Z]{2}")


class FingerprintError(ValueError):
    """A signature file that cannot be used: names the file, the key and the reason."""

    def __init__(self, file: str, key: str, why: str) -> None:
        super().__init__(f"{file}: {key}: {why}")
        self.file, self.key, self.why = file, key, why


class _Invalid(ValueError):
    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key


@dataclass(frozen=True)
class Fingerprint:
    name: str
    kind: str
    pattern: str
    match: str = ""  # empty: the kind's default
    confidence: str = "likely"
    false_positive: bool = False
    asns: tuple[int, ...] = ()  # empty: every network
    countries: tuple[str, ...] = ()
    source: str = ""
    notes: str = ""
    test: Callable[[str], bool] = field(default=bool, compare=False, repr=False)
    # the resolver paths (names, docs/spec.md "Resolver paths") it applies to; empty: every
    # path. Learned signatures (probe/learned.py) are one path's
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", str(self.pattern))  # YAML reads 451 as a number
        if self.kind not in KINDS:
            raise _Invalid("kind", f"{self.kind!r} is not one of {', '.join(KINDS)}")
        match = self.match or _default_match(self.kind, self.pattern)
        if match not in KINDS[self.kind]:
            raise _Invalid(
                "match",
                f"{match!r} does not apply to {self.kind} "
                f"(use one of {', '.join(KINDS[self.kind])})",
            )
        if self.confidence not in CONFIDENCES:
            raise _Invalid("confidence", f"{self.confidence!r} is not confirmed or likely")
        if self.kind == "dns_rcode" and self.confidence != "likely":
            raise _Invalid("confidence", "an rcode is never decisive alone: use 'likely'")
        if not all(isinstance(a, int) and not isinstance(a, bool) and a > 0 for a in self.asns):
            raise _Invalid("asns", f"expected positive AS numbers, got {list(self.asns)!r}")
        if not all(isinstance(c, str) and COUNTRY_RE.fullmatch(c) for c in self.countries):
            raise _Invalid("country", f"expected 2-letter codes, got {list(self.countries)!r}")
        object.__setattr__(self, "match", match)
        object.__setattr__(self, "test", _tester(self.kind, match, self.pattern))

    @property
    def observes(self) -> str:
        """Name the observed value this signature is tried on (see FingerprintSet._first)."""
        if self.kind == "http_header":
            return "header:" + self.pattern.split(":", 1)[0].strip().lower()
        if self.kind == "dns_ede" and self.match != "exact":
            return "dns_ede_text"
        return self.kind


@dataclass(frozen=True)
class FingerprintSet:
    fingerprints: tuple[Fingerprint, ...] = ()

    def __post_init__(self) -> None:
        ordered = sorted(
            self.fingerprints, key=lambda f: (not f.false_positive, f.confidence != "confirmed")
        )
        object.__setattr__(self, "fingerprints", tuple(ordered))

    def __len__(self) -> int:
        return len(self.fingerprints)

    def get(self, name: str) -> Fingerprint | None:
        """Return the signature of this name, or None."""
        return next((f for f in self.fingerprints if f.name == name), None)

    def for_path(self, path: str | None) -> FingerprintSet:
        """Return the signatures that apply to the resolver path named ``path``."""
        if not any(f.paths for f in self.fingerprints):
            return self
        return FingerprintSet(tuple(f for f in self.fingerprints if not f.paths or path in f.paths))

    def merge(self, other: FingerprintSet) -> FingerprintSet:
        """Return both sets in one; a signature of ``other`` replaces one of the same name."""
        names = {f.name for f in other.fingerprints}
        kept = tuple(f for f in self.fingerprints if f.name not in names)
        return FingerprintSet(kept + other.fingerprints)

    def match_dns(
        self,
        answers: Sequence[str],
        cnames: Sequence[str],
        asn: int | None,
        *,
        rcode: str | None = None,
        ede: Sequence[EDE] = (),
    ) -> Fingerprint | None:
        """Return the signature matching a DNS answer (addresses, CNAME chain, rcode, EDE)."""
        rcodes = [rcode.upper()] if rcode else []
        if rcode and rcode.upper() == "NOERROR" and not answers:
            rcodes.append("NODATA")
        return self._first(
            {
                "dns_address": answers,
                "dns_cname": [_dns_name(c) for c in cnames],
                "dns_rcode": rcodes,
                "dns_ede": [str(e.code) for e in ede],
                "dns_ede_text": [e.text for e in ede if e.text],
            },
            asn,
        )

    def match_http(
        self,
        status: int | None,
        headers: dict[str, str] | None,
        body: str | None,
        title: str | None,
        asn: int | None,
    ) -> Fingerprint | None:
        """Return the signature matching an HTTP response."""
        fields: dict[str, Sequence[str]] = {
            f"header:{k.lower()}": [v] for k, v in (headers or {}).items()
        }
        fields.update(
            {
                "http_body": [body] if body else [],
                "http_title": [title] if title else [],
                "http_status": [str(status)] if status is not None else [],
            }
        )
        return self._first(fields, asn)

    def match_tls(
        self, subject: str | None, issuer: str | None, asn: int | None = None
    ) -> Fingerprint | None:
        """Return the signature matching a certificate's subject or issuer."""
        return self._first({"tls_cert": [x for x in (subject, issuer) if x]}, asn)

    def _first(self, fields: dict[str, Sequence[str]], asn: int | None) -> Fingerprint | None:
        """Return the first signature, in the set's order, matching one of ``fields``' values
        (those of the field it observes). Only the signatures observing a field given a value
        are tried: a record's every response is matched, most of them against nothing."""
        found: tuple[int, Fingerprint] | None = None
        for observed, values in fields.items():
            if not values:
                continue
            for i, fp in self._observing.get(observed, ()):
                if found is not None and i >= found[0]:
                    break
                if fp.asns and asn not in fp.asns:
                    continue
                if any(fp.test(v) for v in values):
                    found = (i, fp)
                    break
        return found[1] if found is not None else None

    @functools.cached_property
    def _observing(self) -> dict[str, tuple[tuple[int, Fingerprint], ...]]:
        """Each observed field's signatures, with their places in the set, in order."""
        out: dict[str, list[tuple[int, Fingerprint]]] = {}
        for i, fp in enumerate(self.fingerprints):
            out.setdefault(fp.observes, []).append((i, fp))
        return {k: tuple(v) for k, v in out.items()}

    @classmethod
    def from_ooni_csv(cls, path: str | Path) -> FingerprintSet:
        """Read OONI's blocking-fingerprints CSV (fingerprints_dns.csv, fingerprints_http.csv)."""
        file = str(path)
        reader = csv.DictReader(io.StringIO(_read(path), newline=""))
        try:
            missing = {"name", "location_found", "pattern_type", "pattern"} - set(
                reader.fieldnames or ()
            )
            if missing:
                raise FingerprintError(file, "header", f"missing {', '.join(sorted(missing))}")
            fps = [_from_ooni_row(row, file, reader.line_num) for row in reader]
        except csv.Error as e:
            raise FingerprintError(
                file, f"line {reader.line_num}", f"not valid CSV ({e})"
            ) from None
        return FingerprintSet(tuple(_unique(fps, file)))

    def to_ooni_csv(self, path: str | Path) -> int:
        """Write the signatures OONI's CSV format can carry; return how many were written."""
        rows = [r for r in (_to_ooni_row(fp) for fp in self.fingerprints) if r is not None]
        with Path(path).open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, OONI_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)


def load_fingerprints(*paths: str | Path) -> FingerprintSet:
    """Load signature files (YAML, or OONI CSV by a .csv name), later files overriding earlier."""
    result = FingerprintSet()
    for path in paths:
        one = FingerprintSet.from_ooni_csv(path) if str(path).endswith(".csv") else _load_yaml(path)
        result = result.merge(one)
    return result


@functools.cache
def default_fingerprints() -> FingerprintSet:
    """Return the packaged signatures (probe/data/fingerprints.yaml)."""
    return load_fingerprints(PACKAGED_FINGERPRINTS)


def _load_yaml(path: str | Path) -> FingerprintSet:
    file = str(path)
    try:
        data = yaml.safe_load(_read(path))
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise FingerprintError(file, f"line {line}", str(e.problem)) from None
    except yaml.YAMLError as e:
        raise FingerprintError(file, "file", f"not valid YAML ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("fingerprints"), list):
        raise FingerprintError(
            file, "fingerprints", "expected a mapping with a list 'fingerprints'"
        )
    for k in data:
        if k != "fingerprints":
            raise FingerprintError(file, str(k), "unknown key (known: fingerprints)")
    fps = [_entry(e, file, f"fingerprints[{i}]") for i, e in enumerate(data["fingerprints"])]
    return FingerprintSet(tuple(_unique(fps, file)))


def _entry(e: Any, file: str, key: str) -> Fingerprint:
    if not isinstance(e, dict):
        raise FingerprintError(file, key, "expected a mapping")
    for k in e:
        if k not in ENTRY_KEYS:
            raise FingerprintError(
                file, f"{key}.{k}", f"unknown key (known: {', '.join(ENTRY_KEYS)})"
            )
    for k in ("name", "kind", "pattern"):
        if e.get(k) in (None, ""):
            raise FingerprintError(file, f"{key}.{k}", "missing")
    if not isinstance(e.get("false_positive", False), bool):
        raise FingerprintError(file, f"{key}.false_positive", "expected true or false")
    try:
        return Fingerprint(
            name=str(e["name"]),
            kind=str(e["kind"]),
            pattern=str(e["pattern"]),
            match=str(e.get("match") or ""),
            confidence=str(e.get("confidence", "likely")),
            false_positive=e.get("false_positive", False),
            asns=_tuple(e.get("asns")),
            countries=_tuple(e.get("country")),
            source=str(e.get("source") or ""),
            notes=str(e.get("notes") or ""),
        )
    except _Invalid as err:
        raise FingerprintError(file, f"{key}.{err.key}", str(err)) from None


def _tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _unique(fps: list[Fingerprint], file: str) -> list[Fingerprint]:
    seen: set[str] = set()
    for fp in fps:
        if fp.name in seen:
            raise FingerprintError(file, f"name {fp.name!r}", "duplicate name")
        seen.add(fp.name)
    return fps


def _from_ooni_row(row: dict[str, str], file: str, line: int) -> Fingerprint:
    if not row.get("name"):
        raise FingerprintError(file, f"line {line}.name", "missing")
    where, pattern = row["location_found"] or "", row["pattern"] or ""
    match = OONI_MATCH.get(row["pattern_type"] or "")
    if match is None:
        raise FingerprintError(
            file,
            f"line {line}.pattern_type",
            f"{row['pattern_type']!r} is not full, prefix, contains or regexp",
        )
    if where == "dns":
        kind = "dns_address" if _is_ip(pattern) else "dns_cname"
    elif where == "body":
        kind = "http_body"
    elif where.startswith("header.") and len(where) > 7:
        kind, pattern = "http_header", f"{where[7:]}: {pattern}"
    else:
        raise FingerprintError(
            file, f"line {line}.location_found", f"{where!r} is not dns, body or header.<name>"
        )
    scope, score = row.get("scope") or "", row.get("confidence_no_fp") or ""
    countries = [c.strip() for c in (row.get("expected_countries") or "").split(",")]
    try:
        return Fingerprint(
            name=row["name"],
            kind=kind,
            pattern=pattern,
            match=match,
            confidence="confirmed"
            if scope != "vbw" and score.isdigit() and int(score) >= 5
            else "likely",
            false_positive=scope in OONI_FALSE_POSITIVE,
            countries=tuple(c for c in countries if c and c != "ZZ"),
            source=row.get("source") or "",
            notes=row.get("notes") or "",
        )
    except _Invalid as err:
        raise FingerprintError(file, f"line {line}.{err.key}", str(err)) from None


def _to_ooni_row(fp: Fingerprint) -> dict[str, str] | None:
    pattern, match = fp.pattern, fp.match
    if fp.kind == "dns_cname" and match == "suffix":  # OONI has no suffix match: say it in a regex
        pattern, match = r"(^|\.)" + re.escape(_dns_name(pattern)) + "$", "regex"
    if fp.kind in ("dns_address", "dns_cname") and match != "cidr":
        where = "dns"
    elif fp.kind == "http_body":
        where = "body"
    elif fp.kind == "http_header":
        name, pattern = (p.strip() for p in fp.pattern.split(":", 1))
        where = f"header.{name.lower()}"
    else:
        return None
    scope = "fp" if fp.false_positive else ("isp" if fp.confidence == "confirmed" else "vbw")
    return {
        "name": fp.name,
        "scope": scope,
        "other_names": "",
        "location_found": where,
        "pattern_type": {v: k for k, v in OONI_MATCH.items()}[match],
        "pattern": pattern,
        "confidence_no_fp": "10" if fp.confidence == "confirmed" else "3",
        "expected_countries": ",".join(fp.countries),
        "source": fp.source,
        "exp_url": "",
        "notes": fp.notes,
    }


def _default_match(kind: str, pattern: str) -> str:
    return "cidr" if kind == "dns_address" and "/" in pattern else KINDS[kind][0]


def _tester(kind: str, match: str, pattern: str) -> Callable[[str], bool]:
    """Compile ``pattern`` into a test of one observed value, or raise _Invalid."""
    if kind == "http_header":
        if ":" not in pattern or not pattern.split(":", 1)[0].strip():
            raise _Invalid("pattern", f"{pattern!r} is not 'Header-Name: pattern'")
        pattern = pattern.split(":", 1)[1].strip()
    if kind == "dns_address":
        return _address_tester(match, pattern)
    if kind == "dns_cname":
        name = _dns_name(pattern)
        if match == "suffix":
            return lambda v: (n := _dns_name(v)) == name or n.endswith("." + name)
        inner = _text_tester(match, name if match != "regex" else pattern)
        return lambda v: inner(_dns_name(v))
    if kind == "dns_rcode" and pattern.upper() not in RCODES:
        raise _Invalid("pattern", f"{pattern!r} is not one of {', '.join(RCODES)}")
    if kind == "dns_rcode":
        return _text_tester("exact", pattern.upper())
    if kind in ("dns_ede", "http_status") and match == "exact":
        low, high = (0, 65535) if kind == "dns_ede" else (100, 599)
        if not pattern.isdigit() or not low <= int(pattern) <= high:
            raise _Invalid("pattern", f"{pattern!r} is not a number from {low} to {high}")
        return _text_tester("exact", str(int(pattern)))
    return _text_tester(match, pattern)


def _address_tester(match: str, pattern: str) -> Callable[[str], bool]:
    try:
        if match == "cidr":
            net = ipaddress.ip_network(pattern)
            return lambda v: (a := _address(v)) is not None and a in net
        ip = ipaddress.ip_address(pattern)
    except ValueError as e:
        raise _Invalid("pattern", f"{pattern!r} is not an address or network ({e})") from None
    return lambda v: _address(v) == ip


def _text_tester(match: str, pattern: str) -> Callable[[str], bool]:
    if match == "regex":
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise _Invalid("pattern", f"{pattern!r} is not a valid regex ({e})") from None
        return lambda v: rx.search(v) is not None
    if match == "exact":
        return lambda v: v == pattern
    if match == "prefix":
        return lambda v: v.startswith(pattern)
    return lambda v: pattern in v


def _dns_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _is_ip(text: str) -> bool:
    return _address(text) is not None


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an address, or None: parsed once for every address signature it meets
    (a probe sees the same few answers over and over: its CDN's, a block page's)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FingerprintError(str(path), "file", f"cannot read it ({e})") from None
