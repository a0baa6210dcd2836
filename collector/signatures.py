"""The collector's block-page matcher: probe.fingerprints' answers, remembered by what was asked.

Contract: answers exactly what the wrapped FingerprintSet answers (its matching is pure: the
same observed values give the same signature). Recomputing every verdict matched each
record against every signature, parsing each DNS answer as an address once per address
signature: about two thirds of ``verdict.decide``'s time (docs/benchmarks.md §5). The values
repeat: a service resolves to the same addresses, serves the same certificate and mostly the
same page to every probe of a network; so each distinct question is asked of the set once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from probe.fingerprints import FingerprintSet

# Distinct questions remembered per kind (least recently used forgotten first); the HTTP keys
# hold a page's first bytes (4 KiB at most by default), so a few MB at most.
DNS_ANSWERS = 4096
TLS_ANSWERS = 1024
HTTP_ANSWERS = 1024


class RememberedFingerprints:
    """A FingerprintSet's match_dns, match_tls and match_http (verdict.Fingerprints), cached."""

    def __init__(self, fingerprints: FingerprintSet) -> None:
        self.fingerprints = fingerprints
        self._dns = functools.lru_cache(DNS_ANSWERS)(self._ask_dns)
        self._tls = functools.lru_cache(TLS_ANSWERS)(fingerprints.match_tls)
        self._http = functools.lru_cache(HTTP_ANSWERS)(self._ask_http)

    def match_dns(self, answers: Sequence[str], cnames: Sequence[str], asn: int | None) -> Any:
        """Return the signature matching a DNS answer's addresses and CNAME chain."""
        return self._dns(tuple(answers), tuple(cnames), asn)

    def match_tls(self, subject: str, issuer: str) -> Any:
        """Return the signature matching a certificate's subject or issuer."""
        return self._tls(subject, issuer)

    def match_http(
        self,
        status: int | None,
        headers: dict[str, str] | None,
        body: str | None,
        title: str | None,
        asn: int | None,
    ) -> Any:
        """Return the signature matching an HTTP response."""
        # the headers in their order: a name spelled twice in two cases keeps the last, as
        # FingerprintSet.match_http does
        held = None if headers is None else tuple(headers.items())
        return self._http(status, held, body, title, asn)

    def _ask_dns(self, answers: tuple[str, ...], cnames: tuple[str, ...], asn: int | None) -> Any:
        return self.fingerprints.match_dns(answers, cnames, asn)

    def _ask_http(
        self,
        status: int | None,
        headers: tuple[tuple[str, str], ...] | None,
        body: str | None,
        title: str | None,
        asn: int | None,
    ) -> Any:
        held = None if headers is None else dict(headers)
        return self.fingerprints.match_http(status, held, body, title, asn)
