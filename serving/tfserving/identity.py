"""How the development server names itself, so no log line or report can pass it off as TF Serving."""

from __future__ import annotations

STANDIN_NAME = (
    "mnist-serving-gateway TF-Serving-compatible development server (stand-in, not TensorFlow Serving)"
)
"""Printed in the startup log line and sent on every REST answer."""

SERVED_BY_HEADER = "X-Served-By"
"""REST response header that carries :data:`STANDIN_NAME`."""

OFFICIAL_BINARY = "tensorflow_model_server"
"""The official TF Serving executable looked up on ``PATH``."""
