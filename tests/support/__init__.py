"""Helpers the test suites share (a library, not tests): one of each, flags builders included."""
