"""The only client of the collector's API: control, registration, submission, watchlist, health.

Failures are sorted for the caller: `CollectorUnavailable` (network failure, 429, 5xx, a 3xx, an
answer that is not the expected JSON: nothing happened, try again later) and `CollectorRefused`
(any other 4xx: this request will never be taken as it is). A batch counts as acknowledged only
on a 2xx whose JSON counts every record: a captive portal's "200 OK" page acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe import failures
from probe.record import Control, MalformedRecord, decode

if TYPE_CHECKING:
    import aiohttp

CONTROL_PATH = "/api/v1/control"
ADDRESSES_PATH = "/api/v1/addresses"
SWEEPS_PATH = "/api/v1/sweeps"
SIGNATURES_PATH = "/api/v1/signatures"
SIGNATURES_MAX_BYTES = 2 * 1024 * 1024  # 1,000 signatures with 20 evidence ids each fit
SWEEPS_PER_REQUEST = 10  # docs/spec.md, "Sweeps"
# 2,000 addresses of about 150 bytes each (the default census.addresses_per_cycle) fit many
# times over; the cap is there so that no answer is read without end
ADDRESSES_MAX_BYTES = 8 * 1024 * 1024
CONTROL_NEEDS_TOKEN = (
    "the collector's control serves registered probes only: run `surblocage-probe register`"
)


class CollectorUnavailable(Exception):
    """The collector did not take the request; nothing happened, try again later."""

    def __init__(self, why: str, status: int | None = None) -> None:
        super().__init__(why)
        self.why, self.status = why, status  # status: the HTTP status, when there was one


class CollectorRefused(Exception):
    """The collector refused this request for good (a 4xx other than 429)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"HTTP {status}: {why}")
        self.status, self.why = status, why


@dataclass(frozen=True)
class Ack:
    accepted: int
    inserted: int
    duplicates: int


class CollectorClient:
    """Talks to one collector; one aiohttp session for the client's life (use ``async with``)."""

    def __init__(
        self,
        control_url: str | None = None,
        timeout_seconds: float = 60.0,
        software: str = "surblocage",
        base_url: str | None = None,
    ) -> None:
        # imported by the client, not by this module: `check` without a control never loads
        # aiohttp (probe/failures.py, NETWORK_ERRORS)
        import aiohttp

        self.control_url = control_url
        self.base_url = base_url.rstrip("/") if base_url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._headers = {"User-Agent": software}
        self._session: aiohttp.ClientSession | None = None
        self._control_token: str | None = None
        # why the control refused us for good (no token and the collector wants one, or no
        # control at that URL)
        self.control_refused: str | None = None
        # Until the control has answered once, targets ask it one at a time: a refusal for good
        # is then learnt from one request, not from one per target in flight.
        self._control_answered = False
        self._first_control = asyncio.Lock()

    def use_token(self, token: str, collector_url: str) -> None:
        """Send ``token`` (issued by ``collector_url``) with control requests, if the control is
        that collector's: a token is a secret, never shown to another service."""
        if self.control_url == collector_url.rstrip("/") + CONTROL_PATH:
            self._control_token = token
            self.control_refused = None  # registered since: ask again

    async def __aenter__(self) -> CollectorClient:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def control(self, url: str, addresses: Sequence[str]) -> Control:
        """Ask the collector to measure ``url`` from its vantage; a failure is a Control too."""
        assert self._session is not None, "use CollectorClient in 'async with'"
        assert self.control_url is not None, "no control endpoint"
        if self._control_answered:
            return await self._control(url, addresses)
        async with self._first_control:
            return await self._control(url, addresses)

    async def _control(self, url: str, addresses: Sequence[str]) -> Control:
        assert self._session is not None and self.control_url is not None
        if self.control_refused is not None:
            return Control(failure=failures.unknown_text(self.control_refused))
        body = {"targets": [{"url": url, "addresses": list(addresses)}]}
        token = self._control_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._session.post(self.control_url, json=body, headers=headers) as resp:
                text = await resp.text()
                self._control_answered = True
                if resp.status == 401 and token is None:
                    self.control_refused = CONTROL_NEEDS_TOKEN
                elif resp.status in (404, 405):
                    # no control there (a collector run without one, or a wrong URL): asking
                    # again for every target would only repeat the answer
                    self.control_refused = (
                        f"the control {self.control_url} answered HTTP {resp.status} (no control "
                        "there)"
                    )
                if resp.status != 200:
                    return Control(
                        failure=failures.unknown_text(
                            f"control answered HTTP {resp.status}: {_error_of(text)}"
                        )
                    )
                return _parse_control(text, url)
        except (_client_error(), OSError, TimeoutError) as e:
            return Control(failure=failures.classify(e))

    async def register(
        self, asn: int | None, network: str | None, enrollment_key: str | None
    ) -> Issued:
        """Register a new probe (POST /api/v1/probes); return its id and token."""
        body = {"asn": asn, "network": network, "enrollment_key": enrollment_key}
        doc = await self._call("POST", "/api/v1/probes", {k: v for k, v in body.items() if v})
        return _issued(doc, "registration")

    async def renew(self, probe_id: str, token: str) -> Issued:
        """Renew a probe's token before it expires (POST /api/v1/probes/{id}/token)."""
        doc = await self._call("POST", f"/api/v1/probes/{probe_id}/token", None, token)
        return _issued(doc, "renewal")

    async def submit(self, token: str, records: Sequence[dict[str, Any]]) -> Ack:
        """Submit one batch (POST /api/v1/measurements); return the collector's acknowledgement."""
        doc = await self._call("POST", "/api/v1/measurements", {"records": list(records)}, token)
        return _ack(doc, len(records), "records")

    async def addresses(self) -> Any | None:
        """Return the collector's address list (parse it with address_list.parse_list), or None
        when the collector does not publish one (a 404: a collector older than the census)."""
        try:
            return await self._call("GET", ADDRESSES_PATH, max_bytes=ADDRESSES_MAX_BYTES)
        except CollectorRefused as e:
            if e.status == 404:
                return None
            raise

    async def submit_sweeps(self, token: str, sweeps: Sequence[dict[str, Any]]) -> Ack:
        """Submit sweep documents (POST /api/v1/sweeps, gzip); return the acknowledgement.

        Sorted as ``submit``'s answers are; at most SWEEPS_PER_REQUEST documents.
        """
        assert len(sweeps) <= SWEEPS_PER_REQUEST, "at most 10 sweeps a request (docs/spec.md)"
        raw = gzip.compress(json.dumps({"sweeps": list(sweeps)}).encode(), compresslevel=6)
        doc = await self._call("POST", SWEEPS_PATH, raw, token, gzipped=True)
        return _ack(doc, len(sweeps), "sweeps")

    async def watchlist(self) -> Any:
        """Return the collector's watchlist document (validate it with parse_watchlist)."""
        return await self._call("GET", "/api/v1/watchlist")

    async def signatures(self) -> Any | None:
        """Return the collector's learned block signatures (parse them with probe.learned.parse),
        or None when the collector does not serve them (a 404: a collector older than them)."""
        try:
            return await self._call("GET", SIGNATURES_PATH, max_bytes=SIGNATURES_MAX_BYTES)
        except CollectorRefused as e:
            if e.status == 404:
                return None
            raise

    async def whoami(self) -> tuple[int, str | None]:
        """Return the (asn, network) the collector records for this line, from its ASN database.

        The collector looks up the address it sees and answers only the network: the probe never
        learns its own public address.
        """
        doc = await self._call("GET", "/api/v1/whoami")
        asn, name = doc.get("asn"), doc.get("network")
        if isinstance(asn, bool) or not isinstance(asn, int) or not isinstance(name, str | None):
            raise CollectorUnavailable("whoami: malformed answer")
        return asn, name

    async def health(self) -> None:
        """Return when GET /healthz answers 2xx; raise CollectorUnavailable otherwise."""
        await self._call("GET", "/healthz")

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        gzipped: bool = False,
        max_bytes: int | None = None,
    ) -> Any:
        """Send one request; ``body`` is JSON-able, or bytes of gzipped JSON when ``gzipped``.
        An answer longer than ``max_bytes`` is no answer (CollectorUnavailable)."""
        assert self._session is not None, "use CollectorClient in 'async with'"
        assert self.base_url is not None, "no collector URL"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload: dict[str, Any] = {"json": body}
        if gzipped:
            headers |= {"Content-Type": "application/json", "Content-Encoding": "gzip"}
            payload = {"data": body}
        try:
            async with self._session.request(
                method, self.base_url + path, headers=headers, allow_redirects=False, **payload
            ) as resp:
                status, text = resp.status, await _text(resp, max_bytes)
        except (_client_error(), OSError, TimeoutError) as e:
            raise CollectorUnavailable(failures.classify(e)) from None
        if 400 <= status < 500 and status != 429:
            raise CollectorRefused(status, _error_of(text))
        if not 200 <= status < 300:
            raise CollectorUnavailable(f"HTTP {status}: {_error_of(text)}", status)
        try:
            return json.loads(text)
        except ValueError:
            raise CollectorUnavailable(f"HTTP {status} without a JSON answer") from None


def _client_error() -> type[Exception]:
    """aiohttp's error base (loaded by then: the client made its session with it)."""
    import aiohttp

    return aiohttp.ClientError


async def _text(resp: aiohttp.ClientResponse, max_bytes: int | None) -> str:
    """Read an answer's text, at most ``max_bytes`` of it (None: all)."""
    if max_bytes is None:
        return await resp.text()
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > max_bytes:
            raise CollectorUnavailable(f"{resp.url.path}: answer longer than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks).decode(resp.get_encoding(), errors="replace")


def _ack(doc: Any, sent: int, what: str) -> Ack:
    """Return the acknowledgement of ``sent`` documents; one that does not count them all
    acknowledges nothing (a captive portal's 200 page)."""
    try:
        ack = Ack(int(doc["accepted"]), int(doc["inserted"]), int(doc["duplicates"]))
    except (TypeError, KeyError, ValueError) as e:
        raise CollectorUnavailable(f"malformed acknowledgement ({e!r})") from None
    if ack.accepted != sent:
        raise CollectorUnavailable(f"acknowledged {ack.accepted} of {sent} {what}")
    return ack


@dataclass(frozen=True)
class Issued:
    """A token the collector issued: to whom, and until when (None: a collector whose tokens
    never expire)."""

    probe_id: str
    token: str
    expires_at: str | None = None


def _issued(doc: Any, what: str) -> Issued:
    try:
        expires = text_field(doc, "expires_at") if "expires_at" in doc else None
        return Issued(text_field(doc, "probe_id"), text_field(doc, "token"), expires)
    except (TypeError, KeyError, ValueError) as e:
        raise CollectorUnavailable(f"malformed {what} answer ({e})") from None


def text_field(doc: Any, key: str) -> str:
    """Return ``doc[key]``, a non-empty string; raise ValueError naming the key otherwise."""
    value = doc[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string")
    return value


def _parse_control(text: str, url: str) -> Control:
    try:
        data = json.loads(text)
        entry = next(c for c in data["controls"] if c["url"] == url)
        return decode(Control, entry["control"], "control")
    except (ValueError, KeyError, TypeError, StopIteration, MalformedRecord) as e:
        return Control(failure=failures.unknown_text(f"malformed control answer: {e}"))


def _error_of(text: str) -> str:
    try:
        return str(json.loads(text).get("error", text))[:200]
    except (ValueError, AttributeError):
        return text[:200]
