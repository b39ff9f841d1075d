"""A local Prometheus for ``python -m serving up``: scrapes the servers and the gateway, loads the rules."""
