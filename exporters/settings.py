"""Training settings shared by both frameworks, so the two models train alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters for Flatten -> Dense 512 ReLU -> Dense 10 in either framework."""

    epochs: int = 8
    """Passes over the 60,000 training images."""
    batch_size: int = 128
    learning_rate: float = 1e-3
    """Adam's initial step size; decays to 0 along a cosine over all steps."""
    seed: int = 1234
    device: str = "auto"
    """"auto" uses a GPU when one is present, else the CPU; or "cpu", "cuda", "cuda:1"..."""
    train_limit: int | None = None
    """Use only the first N training images (tests and quick runs)."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train_limit must be >= 1, got {self.train_limit}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "optimizer": "adam",
            "schedule": "cosine decay to 0 over all steps",
            "loss": "sparse categorical cross-entropy on logits",
            "network": "Flatten -> Dense 512 ReLU -> Dense 10 (softmax in the exported graph)",
            "initialization": "Glorot uniform weights, zero biases",
        }
