"""Helpers for the test suite: real servers on loopback, owned by fixtures."""
