"""Locust load tests and the TF Serving vs TorchServe comparison runner."""
