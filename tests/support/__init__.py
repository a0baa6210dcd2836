"""Helpers shared by the test suites: one DNS server, collector process, PostgreSQL, records."""
