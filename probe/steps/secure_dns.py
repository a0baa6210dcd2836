"""The encrypted DNS exchanges: one query over TLS (RFC 7858) or over HTTPS (RFC 8484).

Each exchange sends one query on a connection of its own and returns the reply as a message, or
raises a network error (classified by probe.failures), never anything else. A DoH endpoint is a
stranger: an answer that is not ``application/dns-message``, a status other than 200, a body
past 65,535 bytes (the most a DNS message can be, RFC 8484 §6) or one cut short raises
`failures.UnusableAnswer`, whose text says which.
"""

from __future__ import annotations

import functools
import ssl

import dns.asyncquery
import dns.message

from probe import failures

DOH_TYPE = "application/dns-message"
MAX_MESSAGE_BYTES = 65535


async def dot(
    query: dns.message.Message, address: str, port: int, hostname: str | None, ca_file: str | None
) -> dns.message.Message:
    """Ask over TLS; check the certificate against ``hostname`` when one is given."""
    context = _context(ca_file, hostname is not None)
    reply: dns.message.Message = await dns.asyncquery.tls(
        query, address, port=port, ssl_context=context, server_hostname=hostname
    )
    return reply


async def doh(query: dns.message.Message, url: str, ca_file: str | None) -> dns.message.Message:
    """POST the query to ``url`` and parse the reply, within the bounds above."""
    import aiohttp  # here: only DoH paths need it (probe/failures.py, NETWORK_ERRORS)

    connector = aiohttp.TCPConnector(ssl=_context(ca_file, True), force_close=True)
    headers = {"content-type": DOH_TYPE, "accept": DOH_TYPE}
    async with (
        aiohttp.ClientSession(connector=connector, trust_env=False) as session,
        session.post(url, data=query.to_wire(), headers=headers, allow_redirects=False) as r,
    ):
        if r.status != 200:
            raise failures.UnusableAnswer(f"doh status {r.status}")
        kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != DOH_TYPE:
            raise failures.UnusableAnswer(f"doh content-type {kind[:60] or 'missing'}")
        if (r.content_length or 0) > MAX_MESSAGE_BYTES:
            raise failures.UnusableAnswer("doh message oversized")
        wire = b""
        async for chunk in r.content.iter_chunked(16384):
            wire += chunk
            if len(wire) > MAX_MESSAGE_BYTES:
                raise failures.UnusableAnswer("doh message oversized")
    reply = dns.message.from_wire(wire)
    if not query.is_response(reply):
        raise failures.UnusableAnswer("doh reply to another query")
    return reply


@functools.lru_cache(maxsize=8)
def _context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """Return a client context: system store plus ``ca_file``; ``verify`` False checks nothing
    (a DoT path given without a #HOSTNAME: encrypted, not authenticated, RFC 7858 §4.1)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
