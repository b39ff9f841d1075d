"""The wire protocols the gateway speaks over HTTP, one module each, over the same data plane.

Adding a protocol: a module with a Flask ``blueprint`` (decode -> ``Gateway.predict`` -> encode, using
the helpers of :mod:`gateway.api`), then one line in ``BLUEPRINTS``. Its predict paths are declared
as fast routes (:mod:`gateway.fastpath`) and listed in ``FAST_ROUTES``: served without Flask's dispatch.
"""

from __future__ import annotations

from flask import Blueprint

from gateway.fastpath import FastRoute
from gateway.protocols import friendly, tfserving_rest, v2_rest

__all__ = ["BLUEPRINTS", "FAST_ROUTES"]

BLUEPRINTS: tuple[Blueprint, ...] = (tfserving_rest.blueprint, friendly.blueprint, v2_rest.blueprint)
FAST_ROUTES: tuple[FastRoute, ...] = (*tfserving_rest.FAST_ROUTES, *v2_rest.FAST_ROUTES)
