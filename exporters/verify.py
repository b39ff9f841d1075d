"""Check a published version: checksums, contracts, and reloaded artifacts vs. the trained models.

Meant to run in a fresh process (``python -m exporters verify``), so that nothing from the
training process (in-memory models, cached graphs) can hide a broken artifact.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.typing as npt
from PIL import Image

from exporters.mnist import MnistData
from model_store import CONTRACT, REFERENCE_DIR, ModelStore, VersionRecord

MAX_ABS_DIFF = 1e-5
HANDLER_JSON_BATCH = 1000
HANDLER_PNG_SAMPLES = 200

FloatArray = npt.NDArray[np.float32]
Predict = Callable[[FloatArray], FloatArray]


class VerificationFailed(AssertionError):
    """An artifact does not behave like the model it was exported from."""


@dataclass
class ArtifactCheck:
    name: str
    framework: str
    max_abs_diff: float
    argmax_identical: bool
    accuracy: float
    details: str = ""


@dataclass
class VerificationReport:
    version: int
    checks: list[ArtifactCheck] = field(default_factory=list)
    agreement: float = 0.0


def _compare(
    name: str,
    framework: str,
    got: FloatArray,
    reference: FloatArray,
    labels: npt.NDArray[np.uint8],
    details: str = "",
) -> ArtifactCheck:
    if got.shape != reference.shape:
        raise VerificationFailed(f"{name}: output shape {got.shape}, expected {reference.shape}")
    diff = float(np.max(np.abs(got - reference)))
    identical = bool(np.array_equal(got.argmax(axis=1), reference.argmax(axis=1)))
    check = ArtifactCheck(
        name, framework, diff, identical, float(np.mean(got.argmax(axis=1) == labels)), details
    )
    if diff > MAX_ABS_DIFF or not identical:
        raise VerificationFailed(
            f"{name}: max |Δprobability| {diff:.2e} (limit {MAX_ABS_DIFF:.0e}), identical argmax: {identical}"
        )
    return check


def check_saved_model(version_dir: Path) -> Predict:
    """Load the SavedModel, check its signature against the contract, and run the test set."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    if CONTRACT.signature_name not in loaded.signatures:
        raise VerificationFailed(f"{version_dir}: no {CONTRACT.signature_name!r} signature")
    signature = loaded.signatures[CONTRACT.signature_name]
    _, inputs = signature.structured_input_signature
    outputs = signature.structured_outputs
    expected_in, expected_out = CONTRACT.input, CONTRACT.output
    if list(inputs) != [expected_in.name] or list(outputs) != [expected_out.name]:
        raise VerificationFailed(f"{version_dir}: signature maps {list(inputs)} -> {list(outputs)}")
    spec_in, spec_out = inputs[expected_in.name], outputs[expected_out.name]
    if spec_in.dtype.name != expected_in.dtype or tuple(spec_in.shape.as_list()) != expected_in.shape:
        raise VerificationFailed(f"{version_dir}: input is {spec_in}, contract says {expected_in}")
    if spec_out.dtype.name != expected_out.dtype or tuple(spec_out.shape.as_list()) != expected_out.shape:
        raise VerificationFailed(f"{version_dir}: output is {spec_out}, contract says {expected_out}")

    def predict(images: FloatArray) -> FloatArray:
        return np.asarray(signature(image=tf.constant(images))[expected_out.name].numpy(), dtype=np.float32)

    return predict


def _run_batched(predict: Predict, images: FloatArray, batch: int = 1000) -> FloatArray:
    return np.concatenate([predict(images[start : start + batch]) for start in range(0, len(images), batch)])


def check_torchscript(path: Path) -> Predict:
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()

    def predict(images: FloatArray) -> FloatArray:
        with torch.inference_mode():
            return np.asarray(module(torch.from_numpy(images)).numpy(), dtype=np.float32)

    return predict


def run_mar_handler(
    mar: Path, images: FloatArray, pixels: npt.NDArray[np.uint8]
) -> tuple[FloatArray, FloatArray]:
    """The archive's handler on every image as JSON batches, and on a sample as PNG bodies."""
    from serving.torchserve.inprocess import InProcessHandler

    with tempfile.TemporaryDirectory(prefix="mar-verify-") as workdir:
        handler = InProcessHandler(mar, Path(workdir))
        json_rows: list[FloatArray] = []
        for start in range(0, len(images), HANDLER_JSON_BATCH):
            chunk = images[start : start + HANDLER_JSON_BATCH]
            # Two requests per worker batch, as TorchServe's batching would deliver them.
            half = len(chunk) // 2 or len(chunk)
            bodies = [{"instances": part.tolist()} for part in (chunk[:half], chunk[half:]) if len(part)]
            for reply in handler.handle(bodies):
                if reply.status != 200:
                    raise VerificationFailed(f"{mar}: handler answered {reply.status}: {reply.body}")
                json_rows.append(np.asarray(reply.body["predictions"], dtype=np.float32))
        png_bodies = [_png(pixels[index]) for index in range(min(HANDLER_PNG_SAMPLES, len(pixels)))]
        png_rows = []
        for reply in handler.handle(png_bodies):
            if reply.status != 200:
                raise VerificationFailed(f"{mar}: handler answered {reply.status} to a PNG: {reply.body}")
            png_rows.append(np.asarray(reply.body["predictions"], dtype=np.float32))
    return np.concatenate(json_rows), np.concatenate(png_rows)


def _png(pixels: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def verify_version(store: ModelStore, version: int, data: MnistData) -> VerificationReport:
    """Every check for one version; raises IntegrityError or VerificationFailed on the first problem."""
    record: VersionRecord = store.check_integrity(version)
    if record.data.get("files_sha256") and record.data["files_sha256"] != data.files:
        raise VerificationFailed("the MNIST files differ from those this version was trained on")
    version_dir = store.version_dir(version)
    images = data.test_images.astype(np.float32) / 255.0
    labels = data.test_labels
    tf_reference = np.load(version_dir / REFERENCE_DIR / "tensorflow_probabilities.npy")
    torch_reference = np.load(version_dir / REFERENCE_DIR / "pytorch_probabilities.npy")
    report = VerificationReport(version)

    tf_probabilities = _run_batched(check_saved_model(version_dir), images)
    report.checks.append(_compare("saved_model", "tensorflow", tf_probabilities, tf_reference, labels))

    torchscript = version_dir / record.artifacts["torchscript"].path
    torch_probabilities = _run_batched(check_torchscript(torchscript), images)
    report.checks.append(_compare("torchscript", "pytorch", torch_probabilities, torch_reference, labels))

    mar = version_dir / record.artifacts["torchserve_mar"].path
    json_probabilities, png_probabilities = run_mar_handler(mar, images, data.test_images)
    _compare(
        "torchserve_mar (PNG)",
        "pytorch",
        png_probabilities,
        torch_reference[: len(png_probabilities)],
        labels[: len(png_probabilities)],
    )
    report.checks.append(
        _compare(
            "torchserve_mar",
            "pytorch",
            json_probabilities,
            torch_reference,
            labels,
            f"handler: {len(images)} JSON + {len(png_probabilities)} PNG",
        )
    )

    for check in report.checks:
        recorded = record.artifacts[check.name].test_accuracy
        if recorded is not None and abs(recorded - check.accuracy) > 1e-9:
            raise VerificationFailed(
                f"{check.name}: accuracy {check.accuracy:.4f}, manifest says {recorded:.4f}"
            )
    report.agreement = float(np.mean(tf_probabilities.argmax(axis=1) == torch_probabilities.argmax(axis=1)))
    return report
