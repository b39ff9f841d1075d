"""``python -m exporters digit``: the request bodies the README's examples send, from one image."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exporters.digit import body, write_digit


@pytest.fixture
def pixels() -> np.ndarray:
    return np.arange(28 * 28, dtype=np.uint32).reshape(28, 28).astype(np.uint8)


def test_png_holds_the_pixels(pixels: np.ndarray) -> None:
    decoded = np.asarray(Image.open(io.BytesIO(body(pixels, "png"))))
    assert decoded.shape == (28, 28) and (decoded == pixels).all()


def test_v1_and_v2_bodies_carry_the_scaled_image(pixels: np.ndarray) -> None:
    v1 = json.loads(body(pixels, "v1"))
    v2 = json.loads(body(pixels, "v2"))
    assert np.array(v1["instances"]).shape == (1, 28, 28)
    tensor = v2["inputs"][0]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("image", "FP32", [1, 28, 28])
    expected = pixels.astype(np.float32) / 255.0
    assert np.allclose(np.array(v1["instances"][0]), expected, atol=1e-4)
    assert np.allclose(np.array(tensor["data"]).reshape(28, 28), expected, atol=1e-4)


def test_written_whole_or_not_at_all(pixels: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "digit.png"
    assert write_digit(pixels, "png", out) == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png"]
