"""Reproducible measurements of speed, memory and bytes; results in docs/benchmarks.md."""
