"""Integration fixtures: real MNIST and one real (short) export, made once per test run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exporters.mnist import MnistData, load_mnist
from model_store import MODEL_NAME, ModelStore

QUICK_TRAINING = ["--epochs", "1", "--train-limit", "5000"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m exporters ...`` in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def mnist() -> MnistData:
    return load_mnist()


@pytest.fixture(scope="session")
def exported_store(tmp_path_factory: pytest.TempPathFactory, mnist: MnistData) -> ModelStore:
    """A store holding version 1, trained for one short epoch and verified by the CLI."""
    root = tmp_path_factory.mktemp("store")
    result = run_cli("export", "--store", str(root), *QUICK_TRAINING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return ModelStore(root, MODEL_NAME)
