"""The served model's input as numbers: float32 images ``[N, 28, 28]`` with values in the contract's
range (pixel / 255). Every codec checks its tensors here, whatever the wire format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from model_store import CONTRACT

__all__ = ["HIGH", "LOW", "PIXELS", "SIDE", "as_batch", "as_pixels", "in_range", "one_image"]

SIDE = 28
PIXELS = SIDE * SIDE
LOW, HIGH = CONTRACT.input_range


def as_pixels(value: Any, where: str) -> np.ndarray:
    """Numbers (nested lists or an array) as float32 in the input range; InvalidInput saying what is wrong."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidInput(f"{where}: not a rectangular array of numbers") from exc
    if array.dtype.kind not in "iuf":
        raise InvalidInput(f"{where}: expected numbers, got {_kind(array)}")
    if array.size and not in_range(array):
        if not np.isfinite(array).all():
            raise InvalidInput(f"{where}: values must be finite")
        raise InvalidInput(f"{where}: values must lie in [{LOW:g}, {HIGH:g}] (pixel / 255)")
    return array.astype(np.float32)


def in_range(array: np.ndarray) -> bool:
    """Every value within the input range. Checked before the float32 conversion, which would round
    1.0000000000000002 to 1.0; NaN fails too (every comparison with NaN is false), +-inf is out of range."""
    return bool(array.min() >= LOW and array.max() <= HIGH)


def _kind(array: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "O": "mixed or nested values"}.get(
        array.dtype.kind, str(array.dtype)
    )


def as_batch(array: np.ndarray, where: str) -> np.ndarray:
    """``[N, 28, 28]`` or ``[N, 784]`` -> ``[N, 28, 28]``."""
    if array.ndim == 3 and array.shape[1:] == (SIDE, SIDE):
        return array
    if array.ndim == 2 and array.shape[1] == PIXELS:
        return array.reshape(-1, SIDE, SIDE)
    shape = list(array.shape)
    raise InvalidInput(
        f"{where}: shape {shape[1:] if shape else shape} per image; expected [28, 28] or [784]"
    )


def one_image(value: Any, where: str) -> np.ndarray:
    array = as_pixels(value, where)
    if array.shape == (PIXELS,):
        return array.reshape(SIDE, SIDE)
    if array.shape != (SIDE, SIDE):
        raise InvalidInput(f"{where}: shape {list(array.shape)}; expected [28, 28] or [784]")
    return array
