"""Human names for targets and figures; TF Serving is named as the stand-in whenever it is one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loadtests.backends import BACKEND_NAMES, StackBackend, spec
from loadtests.records import Results

__all__ = ["fmt_estimate", "fmt_ms", "fmt_rps", "number", "official", "target_label", "tfserving_name"]


def official(results: Results) -> bool | None:
    """Whether the run's TF Serving was the official binary (False: the stand-in; None: unverified)."""
    value = results.get("tfserving", {}).get("official")
    return None if value is None else bool(value)


def tfserving_name(official: bool | None) -> str:
    if official is True:
        return "TF Serving"
    if official is False:
        return "TF Serving stand-in"
    return "TF Serving (unverified)"


def _server(entry: StackBackend, official: bool | None) -> str:
    return tfserving_name(official) if entry.server == "tfserving" else entry.label


def target_label(name: str, official: bool | None) -> str:
    """``tfserving-rest`` -> ``TF Serving stand-in, REST``; ``gateway/torchserve-grpc`` ->
    ``gateway -> TorchServe gRPC``."""
    backend = name.removeprefix("gateway/")
    if backend in BACKEND_NAMES:
        entry = spec(backend)
        if backend == name:
            return f"{_server(entry, official)}, {entry.protocol_label}"
        if not entry.direct:
            return f"gateway, {entry.label}"
        return f"gateway -> {_server(entry, official)} {entry.protocol_label}"
    if name.startswith("null-"):
        return f"null endpoint, {'REST' if name.endswith('rest') else 'gRPC'} (calibration)"
    return name


def number(value: Any) -> float:
    """``value`` as a float; NaN for None or anything that is not a number."""
    return float(value) if isinstance(value, int | float) else math.nan


def fmt_ms(value: Any) -> str:
    ms = number(value)
    if math.isnan(ms):
        return "-"
    return f"{ms:.3f}" if abs(ms) < 10 else f"{ms:.1f}"


def fmt_rps(value: Any) -> str:
    rps = number(value)
    return "-" if math.isnan(rps) else f"{rps:,.0f}" if rps >= 100 else f"{rps:.1f}"


def fmt_estimate(estimate: Mapping[str, Any] | None, kind: str = "ms", *, signed: bool = False) -> str:
    """``1.234 [1.200, 1.270]``; ``-`` when missing."""
    if not estimate or estimate.get("value") is None:
        return "-"
    fmt = fmt_ms if kind == "ms" else fmt_rps if kind == "rps" else (lambda v: f"{number(v):.2f}")
    value = fmt(estimate["value"])
    if signed and number(estimate["value"]) >= 0:
        value = "+" + value
    if estimate.get("low") is None or estimate.get("high") is None:
        return value
    return f"{value} [{fmt(estimate['low'])}, {fmt(estimate['high'])}]"
