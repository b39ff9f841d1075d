"""The gateway takes its tensor sizes from the model contract, in one place (``gateway.codecs.tensors``)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.codecs import tensors
from model_store import CONTRACT

GATEWAY = Path(tensors.__file__).resolve().parents[1]
ALLOWED = {"codecs/image.py"}
"""The friendly image API prepares MNIST-style images: the one codec bound to their size."""
SIZES = re.compile(r"\b(28|784)\b|NUM_CLASSES|IMAGE_HEIGHT|IMAGE_WIDTH")


def test_shapes_come_from_the_contract() -> None:
    assert (None, *tensors.ITEM_SHAPE) == tuple(CONTRACT.input.shape)
    assert (None, *tensors.OUTPUT_SHAPE) == tuple(CONTRACT.output.shape)
    assert tuple(CONTRACT.input_range) == (tensors.LOW, tensors.HIGH)
    assert tensors.wire_shape(tensors.ITEM_SHAPE) == [-1, *tensors.ITEM_SHAPE]


def test_no_other_module_names_a_size_of_the_model() -> None:
    found = [
        f"{path.relative_to(GATEWAY)}:{number}: {line.strip()}"
        for path in sorted(GATEWAY.rglob("*.py"))
        if path.relative_to(GATEWAY).as_posix() not in ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SIZES.search(line)
    ]
    assert found == []
