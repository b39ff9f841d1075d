"""The served model's tensors, from its contract (``model_store.CONTRACT``): the input's shape per
instance (a flat instance of the same size is accepted too), its value range, and the output's shape.
Every codec checks its tensors here, whatever the wire format, and the metadata endpoints describe them
from here; nothing else in the gateway names a size (the friendly image codec prepares MNIST images).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gateway.errors import InvalidInput
from model_store import CONTRACT

__all__ = [
    "HIGH",
    "INPUT_NAME",
    "ITEM_FORMS",
    "ITEM_SHAPE",
    "ITEM_SIZE",
    "LOW",
    "OUTPUT_NAME",
    "OUTPUT_SHAPE",
    "OUTPUT_SIZE",
    "as_batch",
    "as_pixels",
    "in_range",
    "one_item",
    "wire_shape",
]

INPUT_NAME, OUTPUT_NAME = CONTRACT.input.name, CONTRACT.output.name
ITEM_SHAPE: tuple[int, ...] = tuple(int(d) for d in CONTRACT.input.shape[1:] if d is not None)
"""One instance of the input (the batch dimension left out)."""
ITEM_SIZE = math.prod(ITEM_SHAPE)
ITEM_FORMS = f"{list(ITEM_SHAPE)} or [{ITEM_SIZE}]"
"""How an instance may come, for error messages."""
OUTPUT_SHAPE: tuple[int, ...] = tuple(int(d) for d in CONTRACT.output.shape[1:] if d is not None)
OUTPUT_SIZE = math.prod(OUTPUT_SHAPE)
LOW, HIGH = CONTRACT.input_range


def wire_shape(item: tuple[int, ...]) -> list[int]:
    """A tensor's shape as metadata gives it: -1 for the batch dimension."""
    return [-1, *item]


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
        raise InvalidInput(f"{where}: values must lie in [{LOW:g}, {HIGH:g}] ({CONTRACT.input.description})")
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
    """``[N, *item]`` or ``[N, item size]`` -> ``[N, *item]``."""
    if array.shape[1:] == ITEM_SHAPE:
        return array
    if array.ndim == 2 and array.shape[1] == ITEM_SIZE:
        return array.reshape(-1, *ITEM_SHAPE)
    shape = list(array.shape)
    raise InvalidInput(f"{where}: shape {shape[1:] if shape else shape} per instance; expected {ITEM_FORMS}")


def one_item(value: Any, where: str) -> np.ndarray:
    """One instance (nested numbers, or flat) -> ``[*item]``."""
    array = as_pixels(value, where)
    if array.shape == (ITEM_SIZE,):
        return array.reshape(ITEM_SHAPE)
    if array.shape != ITEM_SHAPE:
        raise InvalidInput(f"{where}: shape {list(array.shape)}; expected {ITEM_FORMS}")
    return array
