"""Tiny IDX files written by the tests themselves (not real MNIST)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np

from exporters.idx import IMAGES_MAGIC, LABELS_MAGIC
from exporters.mnist import IdxFile


def images_bytes(count: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return struct.pack(">IIII", IMAGES_MAGIC, count, 28, 28) + pixels.tobytes()


def labels_bytes(count: int, seed: int = 0) -> bytes:
    labels = np.random.default_rng(seed).integers(0, 10, size=count, dtype=np.uint8)
    return struct.pack(">II", LABELS_MAGIC, count) + labels.tobytes()


def tiny_dataset() -> dict[str, bytes]:
    return {
        "train-images-idx3-ubyte": images_bytes(6, seed=1),
        "train-labels-idx1-ubyte": labels_bytes(6, seed=2),
        "t10k-images-idx3-ubyte": images_bytes(3, seed=3),
        "t10k-labels-idx1-ubyte": labels_bytes(3, seed=4),
    }


def specs_for(contents: dict[str, bytes]) -> tuple[IdxFile, ...]:
    """IdxFile entries whose checksums match ``contents`` (the tests' stand-in for the published ones)."""
    return tuple(
        IdxFile(name, hashlib.sha256(data).hexdigest(), IMAGES_MAGIC if "images" in name else LABELS_MAGIC)
        for name, data in contents.items()
    )


def write_dataset(directory: Path, contents: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return directory
