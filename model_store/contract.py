"""The model contract every artifact, server, gateway and test agrees on.

One source of truth: consumers import these names instead of repeating them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODEL_NAME = "mnist"
IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one tensor; ``None`` in the shape is the batch dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    description: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclass(frozen=True)
class ModelContract:
    """What a served MNIST model takes and returns."""

    signature_name: str
    input: TensorSpec
    output: TensorSpec
    input_range: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature_name": self.signature_name,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "input_range": list(self.input_range),
        }


CONTRACT = ModelContract(
    signature_name="serving_default",
    input=TensorSpec(
        name="image",
        dtype="float32",
        shape=(None, IMAGE_HEIGHT, IMAGE_WIDTH),
        description="grayscale pixels divided by 255, white digit on black",
    ),
    output=TensorSpec(
        name="probabilities",
        dtype="float32",
        shape=(None, NUM_CLASSES),
        description="softmax over the digits 0-9 (computed inside the exported graph)",
    ),
    input_range=(0.0, 1.0),
)
