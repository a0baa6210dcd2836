"""The daemon of `run` (and what `register` and `status` read): schedule, cycles, spool, delivery.

The measurement core (probe/*.py, probe/steps/) never imports this package, nor does the
collector: the control vantage and `check` measure without a daemon (pyproject.toml's contracts).
"""
