"""Serving tests use the real-server fixtures of tests/integration/conftest.py."""
