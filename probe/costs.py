"""What measuring costs the volunteer's line, in bytes: the per-cycle budget's estimates.

Rough on purpose: the budget (budget.max_bytes_per_cycle) is a safety cap, not an invoice.
"""

from __future__ import annotations

# a DNS query and its answer; a TCP handshake and its close; a TLS handshake (certificate chains
# of a few KiB); HTTP request and response headers
DNS_BYTES, TCP_BYTES, TLS_BYTES, HTTP_BYTES = 512, 256, 6144, 2048
