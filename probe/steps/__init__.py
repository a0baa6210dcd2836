"""The measurement steps: one module per protocol, one shape: ``async measure(spec) -> result``.

Each step owns its timeout, times itself and never raises on a network failure (the failure is a
string from probe.failures in the result). Steps never import each other; probe.flow composes them.
"""
