"""Surblocage collector: ingest, control vantage, flags, collateral, research API and metrics."""
