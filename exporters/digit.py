"""One MNIST test digit as a request body, so the README's examples run as written.

``python -m exporters digit --out digit.png`` writes the PNG that ``curl -F image=@digit.png`` sends;
``--format v1`` and ``--format v2`` write the JSON bodies of TF Serving's REST API and of the Open
Inference Protocol V2 for the same image (float32 pixels in [0, 1], the model's input contract).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from model_store import CONTRACT

Format = Literal["png", "v1", "v2"]
FORMATS: tuple[Format, ...] = ("png", "v1", "v2")


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def body(pixels: npt.NDArray[np.uint8], fmt: Format) -> bytes:
    """The request body for one 28x28 digit in ``fmt``."""
    if fmt == "png":
        return png_bytes(pixels)
    scaled = np.round(pixels.astype(np.float32) / 255.0, 4)
    if fmt == "v1":
        return json.dumps({"instances": [scaled.tolist()]}).encode()
    tensor = {
        "name": CONTRACT.input.name,
        "datatype": "FP32",
        "shape": [1, *scaled.shape],
        "data": scaled.ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}).encode()


def write_digit(pixels: npt.NDArray[np.uint8], fmt: Format, out: Path) -> int:
    """Write the body atomically (a temp file renamed into place); return its size in bytes."""
    data = body(pixels, fmt)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(data)
    partial.replace(out)
    return len(data)
