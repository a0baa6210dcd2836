"""The collateral census (docs/spec.md, "The collateral census").

The domain index: ``names`` (lists parsed; pure), ``index`` (the stored index), ``resolve``
(bounded-rate resolution) and ``refresh`` (serve's background resolution).
The probe side, from the collector's end: ``targets`` (the addresses probes sweep, computed in
the background and cached), ``sweeps`` (POST /api/v1/sweeps parsed into bounded types and
stored pending), ``vantage`` (the collector's own look at an address), ``looks`` (what an entry
says of its address; pure), ``judgement`` (pending sweeps -> address flags, by the service
flags' rules; SQL) and ``background`` (the address judge in the event loop); ``routes`` their
HTTP in and out.
The reads of what they show: ``queries`` (the census now, per address), ``history`` (over
time) and ``reads`` (their routes).
"""
