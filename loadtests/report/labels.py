"""Human names for targets and figures; TF Serving is named as the stand-in whenever it is one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gateway.registry import BACKEND_NAMES, BackendSpec, spec

__all__ = ["fmt_estimate", "fmt_ms", "fmt_rps", "target_label", "tfserving_name"]


def tfserving_name(official: bool | None) -> str:
    if official is True:
        return "TF Serving"
    if official is False:
        return "TF Serving stand-in"
    return "TF Serving (unverified)"


def _server(entry: BackendSpec, official: bool | None) -> str:
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


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def fmt_ms(value: Any) -> str:
    number = _num(value)
    if math.isnan(number):
        return "-"
    return f"{number:.3f}" if abs(number) < 10 else f"{number:.1f}"


def fmt_rps(value: Any) -> str:
    number = _num(value)
    return "-" if math.isnan(number) else f"{number:,.0f}" if number >= 100 else f"{number:.1f}"


def fmt_estimate(estimate: Mapping[str, Any] | None, kind: str = "ms", *, signed: bool = False) -> str:
    """``1.234 [1.200, 1.270]``; ``-`` when missing."""
    if not estimate or estimate.get("value") is None:
        return "-"
    fmt = fmt_ms if kind == "ms" else fmt_rps if kind == "rps" else (lambda v: f"{_num(v):.2f}")
    value = fmt(estimate["value"])
    if signed and _num(estimate["value"]) >= 0:
        value = "+" + value
    if estimate.get("low") is None or estimate.get("high") is None:
        return value
    return f"{value} [{fmt(estimate['low'])}, {fmt(estimate['high'])}]"
