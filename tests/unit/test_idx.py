from __future__ import annotations

import struct

import numpy as np
import pytest

from exporters.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxFormatError, parse_idx
from tests.unit.idx_files import images_bytes, labels_bytes


def test_parses_images_and_labels() -> None:
    images = parse_idx(images_bytes(4), IMAGES_MAGIC, "x")
    labels = parse_idx(labels_bytes(4), LABELS_MAGIC, "y")
    assert images.shape == (4, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (4,) and labels.max() <= 9


def test_pixels_survive_round_trip() -> None:
    pixels = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    data = struct.pack(">IIII", IMAGES_MAGIC, 2, 28, 28) + pixels.tobytes()
    np.testing.assert_array_equal(parse_idx(data, IMAGES_MAGIC, "x"), pixels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (images_bytes(2)[:-1], "truncated"),
        (images_bytes(2) + b"\0", "trailing bytes"),
        (images_bytes(2)[:10], "truncated header"),
        (b"\0\0", "too short"),
        (labels_bytes(2), "magic number 0x00000801, expected 0x00000803"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(IdxFormatError, match=message) as caught:
        parse_idx(data, IMAGES_MAGIC, "/data/train-images-idx3-ubyte")
    assert "/data/train-images-idx3-ubyte" in str(caught.value)
