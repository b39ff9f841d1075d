"""Parse the IDX files MNIST ships in (big-endian header, then raw uint8 data)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file of the expected kind."""


def parse_idx(data: bytes, expected_magic: int, source: Path | str) -> npt.NDArray[np.uint8]:
    """Decode IDX bytes into an array; errors name ``source``."""
    if len(data) < 4:
        raise IdxFormatError(f"{source}: {len(data)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expected_magic:
        raise IdxFormatError(f"{source}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{source}: truncated header ({len(data)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        problem = "truncated" if len(data) < expected_size else "has trailing bytes"
        raise IdxFormatError(
            f"{source}: {problem}: {len(data)} bytes, header {tuple(shape)} implies {expected_size}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_images(path: Path) -> npt.NDArray[np.uint8]:
    return parse_idx(path.read_bytes(), IMAGES_MAGIC, path)


def read_labels(path: Path) -> npt.NDArray[np.uint8]:
    return parse_idx(path.read_bytes(), LABELS_MAGIC, path)
