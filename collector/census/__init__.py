"""The collateral census (docs/spec.md "The collateral census"): the domain index, the sweeps,
the address flags, and the reads of what they show (``queries``, ``history``, ``reads``)."""
