"""Request payloads: real MNIST test digits that both exported models classify correctly.

Every request carries one real test image and the label it must come back with. Digits are chosen
from the store's reference outputs (``reference/{tensorflow,pytorch}_probabilities.npy``: the exported
models' answers on the 10,000 test images), so a wrong digit in a response is a serving failure,
not a model error. The same bytes go to every REST target (equal footing); gRPC targets send the
same pixels as a float32 tensor (TF Serving) or the same JSON inside ``input["data"]`` (TorchServe).

Importing this module needs only numpy (it runs inside the Locust process, which must not import TF).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model_store import MODEL_NAME, REFERENCE_DIR, ModelStore

__all__ = [
    "Digit",
    "PayloadError",
    "Payloads",
    "choose_digits",
    "load_payloads",
    "payloads_from_store",
    "write_payloads",
]

FORMAT = "loadtests-payloads/1"


class PayloadError(RuntimeError):
    """No usable digits (empty store, missing reference outputs, or an unreadable payload file)."""


@dataclass(frozen=True)
class Digit:
    index: int
    """Position in the MNIST test set."""
    label: int
    image: npt.NDArray[np.float32]
    """[28, 28] float32 in [0, 1] (pixel / 255), the model's input."""

    def instances(self) -> list[Any]:
        return [self.image.tolist()]

    def rest_body(self) -> bytes:
        """``{"instances": [image]}``: the body every REST target receives (TF Serving's row format)."""
        return json.dumps({"instances": self.instances()}, separators=(",", ":")).encode()

    def body_for(self, api: str) -> bytes:
        """The REST body a server API takes: V2's tensor for ``v2``, the instances body for the others."""
        return self.v2_body() if api == "v2" else self.rest_body()

    def v2_body(self) -> bytes:
        """The same image as an Open Inference Protocol (V2) JSON infer request (Triton's REST)."""
        tensor = {"name": "image", "datatype": "FP32", "shape": [1, 28, 28], "data": self.instances()}
        return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Payloads:
    model: str
    version: int | None
    """Store version whose reference outputs chose the digits (None: chosen by label only)."""
    digits: tuple[Digit, ...]
    source: str

    def describe(self) -> dict[str, Any]:
        labels = [digit.label for digit in self.digits]
        return {
            "model": self.model,
            "reference_version": self.version,
            "digits": len(self.digits),
            "test_indices": [digit.index for digit in self.digits],
            "labels_histogram": {str(d): labels.count(d) for d in range(10)},
            "source": self.source,
            "instances_per_request": 1,
            "rest_body_bytes": [len(digit.rest_body()) for digit in self.digits[:1]],
        }


def choose_digits(
    labels: npt.NDArray[np.integer[Any]],
    references: list[npt.NDArray[np.floating[Any]]],
    count: int,
    seed: int = 0,
) -> list[int]:
    """Indices of ``count`` test images every reference classifies as their label, spread over the classes."""
    correct = np.ones(len(labels), dtype=bool)
    for probabilities in references:
        if probabilities.shape != (len(labels), 10):
            raise PayloadError(
                f"reference outputs have shape {probabilities.shape}, expected ({len(labels)}, 10)"
            )
        correct &= probabilities.argmax(axis=1) == labels
    order = np.random.default_rng(seed).permutation(len(labels))
    per_class: dict[int, list[int]] = {digit: [] for digit in range(10)}
    for index in order:
        if correct[index]:
            per_class[int(labels[index])].append(int(index))
    chosen: list[int] = []
    while len(chosen) < count and any(per_class.values()):
        for digit in range(10):
            if per_class[digit] and len(chosen) < count:
                chosen.append(per_class[digit].pop(0))
    if not chosen:
        raise PayloadError("no test image is classified correctly by every model")
    return chosen


def payloads_from_store(
    store: ModelStore,
    test_images: npt.NDArray[np.uint8],
    test_labels: npt.NDArray[np.uint8],
    *,
    version: int | None = None,
    count: int = 100,
    seed: int = 0,
) -> Payloads:
    """Digits both exported models of ``version`` (default: the latest) get right."""
    version = version if version is not None else store.latest_version()
    if version is None:
        raise PayloadError(f"no model version in {store.model_dir}; run `make demo` or `make export` first")
    reference_dir = store.version_dir(version) / REFERENCE_DIR
    try:
        references = [np.load(reference_dir / f"{fw}_probabilities.npy") for fw in ("tensorflow", "pytorch")]
    except FileNotFoundError as exc:
        raise PayloadError(f"version {version} has no reference outputs ({exc.filename})") from exc
    indices = choose_digits(test_labels, references, count, seed)
    digits = tuple(
        Digit(index, int(test_labels[index]), (test_images[index] / np.float32(255.0)).astype(np.float32))
        for index in indices
    )
    return Payloads(store.model_name, version, digits, f"{reference_dir} + MNIST test set")


def write_payloads(payloads: Payloads, path: Path) -> None:
    data = {
        "format": FORMAT,
        "model": payloads.model,
        "version": payloads.version,
        "source": payloads.source,
        "digits": [
            {"index": digit.index, "label": digit.label, "image": digit.image.tolist()}
            for digit in payloads.digits
        ],
    }
    path.write_text(json.dumps(data))


def load_payloads(path: Path) -> Payloads:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        digits = tuple(
            Digit(int(item["index"]), int(item["label"]), np.asarray(item["image"], dtype=np.float32))
            for item in data["digits"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PayloadError(f"{path}: not a payload file ({exc})") from exc
    if not digits or any(digit.image.shape != (28, 28) for digit in digits):
        raise PayloadError(f"{path}: expected at least one 28x28 digit")
    return Payloads(str(data.get("model") or MODEL_NAME), data.get("version"), digits, str(path))
