"""The measurement steps: one module per protocol, one shape: ``async measure(spec) -> result``.

Each step owns its timeout, times itself and never raises on a network failure (the failure is a
string from probe.failures in the result). Who composes whom (pyproject.toml's contracts keep it):

- dns, tcp, tls and http never import each other;
- connection composes tcp, tls and http, and is the only step that imports others: one
  connection per address carries the TCP connect, the TLS handshake and the GET, through the
  halves of those steps that take or hand on an open connection (``tcp.connect``,
  ``tls.upgrade``, ``http.fetch``). Measured each on its own connection, the three layers cost
  six round trips after DNS where four suffice, and twice the handshakes and certificate bytes
  (connection.py). It is given addresses and never resolves, so it does not import dns;
- probe.flow composes dns, connection and tls (the SNI swap, on a connection of its own) into
  one target and follows redirects; no step imports the flow or anything above it.
"""
