"""The collateral census (docs/spec.md, "The collateral census"): the domain index, the sweeps'
judgement, the addresses published to probes and the census's queries."""
