"""Locustfile of ``python -m loadtests compare``: every User class plus the plan-driven load shape.

The runner starts it headless with ``--plan-file`` (what to run, in which order, for how long) and
``--samples-file``/``--events-file`` (where the raw timings and the phase boundaries go).
"""

from loadtests.locustfile import *  # noqa: F403  (Locust collects the User classes from this module)
from loadtests.locustfile import __all__ as _users
from loadtests.shape import ComparisonShape

__all__ = [*_users, "ComparisonShape"]
