"""Write one trained Keras/PyTorch pair into the model store as a new version.

Artifacts of version N (all built in a staging directory, published by one rename):
SavedModel at the version root, ``torchscript/model.pt``, ``torchserve/mnist.mar`` and
``reference/{tensorflow,pytorch}_probabilities.npy`` (the in-memory models' outputs on the
10,000 test images, against which ``verify`` compares the reloaded artifacts).
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

import serving.torchserve
from exporters import train_keras, train_torch
from exporters.mnist import MnistData
from exporters.settings import TrainSettings
from model_store import CONTRACT, REFERENCE_DIR, ArtifactRecord, ModelStore, VersionRecord
from model_store.checksums import combined_sha256, hash_tree, sha256_file

TORCHSCRIPT_PATH = "torchscript/model.pt"
MAR_DIR = "torchserve"
HANDLER_FILE = Path(serving.torchserve.__file__).parent / "mnist_handler.py"
_NOT_SAVED_MODEL = frozenset({"torchscript", MAR_DIR, REFERENCE_DIR, "version.json"})
_LIBRARIES = ("numpy", "tensorflow", "keras", "torch", "torchserve", "torch-model-archiver", "pillow")


class ExportError(RuntimeError):
    """An artifact could not be produced."""


@dataclass(frozen=True)
class TrainedPair:
    keras: train_keras.KerasResult
    torch: train_torch.TorchResult
    settings: TrainSettings


def mar_name(model_name: str) -> str:
    return f"{MAR_DIR}/{model_name}.mar"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_mar(
    model_name: str, version: int, torchscript: Path, export_dir: Path, handler: Path = HANDLER_FILE
) -> Path:
    """Package the TorchScript file and a handler (ours by default) with torch-model-archiver."""
    archiver = Path(sys.executable).parent / "torch-model-archiver"
    command = [
        str(archiver) if archiver.exists() else "torch-model-archiver",
        "--model-name",
        model_name,
        "--version",
        str(version),
        "--serialized-file",
        str(torchscript),
        "--handler",
        str(handler),
        "--export-path",
        str(export_dir),
        "--force",
    ]
    export_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(f"torch-model-archiver could not run: {exc}") from exc
    mar = export_dir / f"{model_name}.mar"
    if result.returncode != 0 or not mar.is_file():
        raise ExportError(
            f"torch-model-archiver failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return mar


def _artifact(
    version_dir: Path, framework: str, format_: str, path: str, files: dict[str, str], accuracy: float | None
) -> ArtifactRecord:
    size = sum((version_dir / relative).stat().st_size for relative in files)
    return ArtifactRecord(framework, format_, path, files, combined_sha256(files), size, accuracy)


def export_version(store: ModelStore, trained: TrainedPair, data: MnistData) -> VersionRecord:
    """Write every artifact of a new version and publish it; return its record."""
    with store.draft() as draft:
        root = draft.path
        train_keras.export_saved_model(trained.keras.model, str(root))
        (root / "torchscript").mkdir()
        train_torch.export_torchscript(trained.torch.classifier, str(root / TORCHSCRIPT_PATH))
        build_mar(store.model_name, draft.version, root / TORCHSCRIPT_PATH, root / MAR_DIR)
        (root / REFERENCE_DIR).mkdir()
        np.save(root / REFERENCE_DIR / "tensorflow_probabilities.npy", trained.keras.test_probabilities)
        np.save(root / REFERENCE_DIR / "pytorch_probabilities.npy", trained.torch.test_probabilities)

        saved_model_files = hash_tree(root, exclude=_NOT_SAVED_MODEL)
        mar_path = mar_name(store.model_name)
        reference_files = {
            f"{REFERENCE_DIR}/{name}": sha for name, sha in hash_tree(root / REFERENCE_DIR).items()
        }
        artifacts = {
            "saved_model": _artifact(
                root, "tensorflow", "saved_model", ".", saved_model_files, trained.keras.test_accuracy
            ),
            "torchscript": _artifact(
                root,
                "pytorch",
                "torchscript",
                TORCHSCRIPT_PATH,
                {TORCHSCRIPT_PATH: sha256_file(root / TORCHSCRIPT_PATH)},
                trained.torch.test_accuracy,
            ),
            "torchserve_mar": _artifact(
                root,
                "pytorch",
                "torchserve_mar",
                mar_path,
                {mar_path: sha256_file(root / mar_path)},
                trained.torch.test_accuracy,
            ),
            "reference_outputs": _artifact(
                root, "both", "numpy_float32", REFERENCE_DIR, reference_files, None
            ),
        }
        record = VersionRecord(
            model_name=store.model_name,
            version=draft.version,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            contract=CONTRACT.to_dict(),
            artifacts=artifacts,
            training={
                "settings": trained.settings.to_dict(),
                "tensorflow": {
                    "train_seconds": round(trained.keras.train_seconds, 2),
                    "device": trained.keras.device,
                    "test_accuracy": trained.keras.test_accuracy,
                },
                "pytorch": {
                    "train_seconds": round(trained.torch.train_seconds, 2),
                    "device": trained.torch.device,
                    "test_accuracy": trained.torch.test_accuracy,
                },
                "agreement": float(
                    np.mean(
                        trained.keras.test_probabilities.argmax(axis=1)
                        == trained.torch.test_probabilities.argmax(axis=1)
                    )
                ),
            },
            library_versions=library_versions(),
            data={
                "source": data.source,
                "files_sha256": data.files,
                "test_images": len(data.test_labels),
            },
        )
        store.publish(draft, record)
    return record
