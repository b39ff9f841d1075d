"""Train briefly on real MNIST, export all three artifacts, reload them, check the contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import torch

from exporters.mnist import MnistData
from model_store import CONTRACT, ModelStore
from model_store.checksums import hash_tree
from serving.torchserve.inprocess import read_mar_manifest
from tests.support import QUICK_TRAINING, run_cli

pytestmark = pytest.mark.integration


def test_version_one_holds_every_artifact_with_checksums(exported_store: ModelStore) -> None:
    assert exported_store.versions() == [1]
    record = exported_store.check_integrity(1)
    assert set(record.artifacts) == {"saved_model", "torchscript", "torchserve_mar", "reference_outputs"}
    assert record.contract == CONTRACT.to_dict()
    assert record.training["settings"]["epochs"] == 1
    assert {"tensorflow", "torch", "torchserve", "torch-model-archiver"} <= set(record.library_versions)
    for name in ("saved_model", "torchscript", "torchserve_mar"):
        accuracy = record.artifacts[name].test_accuracy
        assert accuracy is not None and accuracy > 0.8, (name, accuracy)
    index = json.loads((exported_store.model_dir / "manifest.json").read_text())
    assert index["latest_version"] == 1


def test_saved_model_serves_the_contract(exported_store: ModelStore, mnist: MnistData) -> None:
    loaded = tf.saved_model.load(str(exported_store.version_dir(1)))
    signature = loaded.signatures["serving_default"]
    images = mnist.test_images[:64].astype(np.float32) / 255.0
    probabilities = signature(image=tf.constant(images))["probabilities"].numpy()
    assert probabilities.shape == (64, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == mnist.test_labels[:64]) > 0.8


def test_torchscript_serves_the_contract(exported_store: ModelStore, mnist: MnistData) -> None:
    record = exported_store.record(1)
    module = torch.jit.load(str(exported_store.version_dir(1) / record.artifacts["torchscript"].path))
    images = torch.from_numpy(mnist.test_images[:64].astype(np.float32) / 255.0)
    with torch.inference_mode():
        probabilities = module(images).numpy()
    assert probabilities.shape == (64, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_mar_wraps_the_torchscript_file_and_our_handler(exported_store: ModelStore) -> None:
    record = exported_store.record(1)
    manifest = read_mar_manifest(exported_store.version_dir(1) / record.artifacts["torchserve_mar"].path)
    assert manifest["model"] == {
        "modelName": "mnist",
        "serializedFile": "model.pt",
        "handler": "mnist_handler.py",
        "modelVersion": "1",
    }


def test_verify_reports_every_artifact(exported_store: ModelStore) -> None:
    result = run_cli("verify", "--store", str(exported_store.root), "--version", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for artifact in ("saved_model", "torchscript", "torchserve_mar"):
        assert artifact in result.stdout
    assert "agreement" in result.stdout


@pytest.mark.parametrize(
    ("relative", "damage"),
    [
        ("variables/variables.data-00000-of-00001", "truncate"),
        ("torchserve/mnist.mar", "flip"),
        ("torchscript/model.pt", "delete"),
    ],
)
def test_verify_detects_damaged_artifacts(
    tmp_path: Path, exported_store: ModelStore, relative: str, damage: str
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(exported_store.root, copy)
    target = copy / "mnist" / "1" / relative
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        target.unlink()
    result = run_cli("verify", "--store", str(copy), "--version", "1")
    assert result.returncode == 1
    assert str(target) in result.stderr
    assert "failed verification" in result.stderr


def test_demo_reuses_a_verified_store(exported_store: ModelStore) -> None:
    before = hash_tree(exported_store.model_dir)
    result = run_cli("demo", "--store", str(exported_store.root))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Reusing verified version 1" in result.stdout
    assert "Training" not in result.stdout
    assert "test accuracy" in result.stdout  # the summary table
    assert hash_tree(exported_store.model_dir) == before


def test_second_export_adds_version_two_and_leaves_one_untouched(
    tmp_path: Path, exported_store: ModelStore
) -> None:
    root = tmp_path / "store"
    shutil.copytree(exported_store.root, root)
    store = ModelStore(root, "mnist")
    version_one = hash_tree(store.version_dir(1))
    result = run_cli("export", "--store", str(root), *QUICK_TRAINING)
    assert result.returncode == 0, result.stderr[-2000:]
    assert store.versions() == [1, 2]
    assert hash_tree(store.version_dir(1)) == version_one
    assert store.check_integrity(2).version == 2
    index = json.loads((store.model_dir / "manifest.json").read_text())
    assert sorted(index["versions"]) == ["1", "2"] and index["latest_version"] == 2


def test_unwritable_store_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the store should be")
    result = run_cli("export", "--store", str(blocker / "store"), *QUICK_TRAINING, timeout=120)
    assert result.returncode == 1
    assert "not writable" in result.stderr
    assert "Training" not in result.stdout
