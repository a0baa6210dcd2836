"""Helpers shared by the test suites (imported as a library, not collected as tests)."""
