"""The wire protocols the gateway speaks over HTTP, one module each, over the same data plane.

Adding a protocol: a module with a Flask ``blueprint`` (decode -> ``Gateway.predict`` -> encode, using
the helpers of :mod:`gateway.api`), then one line in ``BLUEPRINTS``.
"""

from __future__ import annotations

from flask import Blueprint

from gateway.protocols import friendly, tfserving_rest, v2_rest

__all__ = ["BLUEPRINTS"]

BLUEPRINTS: tuple[Blueprint, ...] = (tfserving_rest.blueprint, friendly.blueprint, v2_rest.blueprint)
