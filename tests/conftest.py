"""Fixtures shared by every test folder; session-scoped and made only when a test asks for them."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Iterator

# pycurl before anything imports TensorFlow: TensorFlow loads a libcurl older than the one pycurl was
# built against, and once that one is in the process `import pycurl` fails ("libcurl link-time
# version is older than compile-time version"). The gateway process imports pycurl first; the test
# process must too, whatever order pytest collects the files in.
import pycurl  # noqa: F401
import pytest

from exporters.mnist import MnistData, load_mnist
from model_store import MODEL_NAME, ModelStore
from serving.process import stop_server
from serving.settings import ServingSettings
from serving.torchserve import launcher as torchserve
from tests.support import QUICK_TRAINING, run_cli, serving_settings


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


@pytest.fixture(scope="session")
def torchserve_settings(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingSettings]:
    """TorchServe (real, token auth on) serving version 1 of the session's exported store."""
    settings = serving_settings(exported_store.root, tmp_path_factory.mktemp("run"))
    try:
        torchserve.check_ports(settings)
        record = torchserve.start(settings)
        torchserve.wait_until_ready(settings, record, 120)
        yield settings
    finally:
        stop_server(settings.run_dir, torchserve.NAME)
