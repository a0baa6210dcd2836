"""Raw-socket diagnostics of blocked targets: forged DNS answers, reset origin, interfering hop.

The only package outside the lab that uses scapy, and it imports it inside functions: a probe
without scapy or without CAP_NET_RAW starts, measures and judges exactly as before, and its
records say ``diagnostics: {"skipped": REASON}`` (docs/spec.md, "Diagnostics").
"""

from probe.diagnostics.diagnoser import Diagnoser as Diagnoser
from probe.diagnostics.diagnoser import Settings as Settings
from probe.diagnostics.platform import unavailable as unavailable
