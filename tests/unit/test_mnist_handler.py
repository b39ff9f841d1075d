"""Our TorchServe handler, run in-process from a real .mar the way TorchServe's worker runs it.

The archive wraps a small randomly initialised TorchScript module (not a trained model):
these tests check decoding, batching and error answers, not accuracy.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from exporters.export import build_mar
from exporters.train_torch import Classifier, DenseNet, export_torchscript
from serving.torchserve.inprocess import InProcessHandler, read_mar_manifest


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> InProcessHandler:
    root = tmp_path_factory.mktemp("mar")
    torch.manual_seed(0)
    export_torchscript(Classifier(DenseNet()).eval(), str(root / "model.pt"))
    mar = build_mar("mnist", 4, root / "model.pt", root / "export")
    return InProcessHandler(mar, root / "unpacked")


@pytest.fixture(scope="module")
def reference(handler: InProcessHandler) -> torch.jit.ScriptModule:
    return handler.model


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def _png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _expected(model: torch.jit.ScriptModule, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(pixels.astype(np.float32) / 255.0)).numpy()


def test_archive_manifest_names_model_handler_and_version(tmp_path: Path, handler: InProcessHandler) -> None:
    model = handler.manifest["model"]
    assert model["modelName"] == "mnist"
    assert model["modelVersion"] == "4"
    assert model["handler"] == "mnist_handler.py"


def test_json_single_image(handler: InProcessHandler, reference: torch.jit.ScriptModule) -> None:
    pixels = _images(1)
    [reply] = handler.handle([{"instances": (pixels[0] / 255.0).tolist()}])
    assert reply.status == 200
    np.testing.assert_allclose(reply.body["predictions"], _expected(reference, pixels), atol=1e-6)
    assert reply.body["digits"] == [int(_expected(reference, pixels).argmax())]
    assert reply.body["model_version"] == "4"  # the archive's version, so clients know what answered


def test_json_many_images_and_flat_vectors(
    handler: InProcessHandler, reference: torch.jit.ScriptModule
) -> None:
    pixels = _images(5, seed=1)
    nested = [(image / 255.0).tolist() for image in pixels]
    flat = [(image.reshape(-1) / 255.0).tolist() for image in pixels]
    replies = handler.handle([{"instances": nested}, {"inputs": flat}])
    for reply in replies:
        assert reply.status == 200
        np.testing.assert_allclose(reply.body["predictions"], _expected(reference, pixels), atol=1e-6)


def test_json_as_raw_bytes(handler: InProcessHandler) -> None:
    pixels = _images(2, seed=2)
    body = ('{"instances": ' + str([(image / 255.0).tolist() for image in pixels]) + "}").encode()
    [reply] = handler.handle([body])
    assert reply.status == 200 and len(reply.body["predictions"]) == 2


def test_png_and_jpeg_bodies(handler: InProcessHandler, reference: torch.jit.ScriptModule) -> None:
    pixels = _images(1, seed=3)
    [png] = handler.handle([_png(pixels[0])])
    np.testing.assert_allclose(png.body["predictions"], _expected(reference, pixels), atol=1e-6)
    jpeg = io.BytesIO()
    Image.fromarray(pixels[0]).save(jpeg, format="JPEG", quality=95)
    [reply] = handler.handle([jpeg.getvalue()])
    assert reply.status == 200 and len(reply.body["predictions"][0]) == 10


def test_rgb_png_is_converted_to_grayscale(handler: InProcessHandler) -> None:
    [reply] = handler.handle([_png(_images(1, seed=4)[0], mode="RGB")])
    assert reply.status == 200


def test_batch_of_mixed_requests_answers_each_one(
    handler: InProcessHandler, reference: torch.jit.ScriptModule
) -> None:
    pixels = _images(3, seed=5)
    replies = handler.handle(
        [
            _png(pixels[0]),
            {"instances": [(pixels[1] / 255.0).tolist(), (pixels[2] / 255.0).tolist()]},
            b"not an image",
            _png(pixels[2]),
        ]
    )
    assert [reply.status for reply in replies] == [200, 200, 400, 200]
    np.testing.assert_allclose(replies[0].body["predictions"], _expected(reference, pixels[:1]), atol=1e-6)
    np.testing.assert_allclose(replies[1].body["predictions"], _expected(reference, pixels[1:]), atol=1e-6)
    np.testing.assert_allclose(replies[3].body["predictions"], _expected(reference, pixels[2:]), atol=1e-6)
    assert replies[2].body["type"] == "InvalidInput"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [[0.5] * 27] * 28}, "shape"),
        ({"instances": [[[0.5] * 28] * 28, [[0.5] * 28] * 27]}, "instance 1: shape"),
        ({"instances": [[2.0] * 28] * 28}, r"\[0, 1\]"),
        ({"instances": []}, "non-empty"),
        ({"images": [[0.0] * 784]}, "exactly one of"),
        ({"instances": [[0.0] * 784], "inputs": [[0.0] * 784]}, "exactly one of"),
        ({"instances": [["a"] * 28] * 28}, "not a numeric array"),
        ({"instances": [[float("nan")] * 28] * 28}, "NaN or Infinity"),
        (b'{"instances": [[NaN]]}', "NaN"),
        (b'{"instances": [', "malformed JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
        ({"instances": [[0.0] * 784] * 1025}, "limit is 1024"),
    ],
)
def test_invalid_input_gets_400_with_reason(handler: InProcessHandler, body: object, message: str) -> None:
    [reply] = handler.handle([body])
    assert reply.status == 400
    assert reply.body["code"] == 400
    assert re.search(message, reply.body["message"]), reply.body["message"]


def test_wrong_image_size_is_rejected(handler: InProcessHandler) -> None:
    [reply] = handler.handle([_png(np.zeros((32, 32), dtype=np.uint8))])
    assert reply.status == 400 and "32x32" in reply.body["message"]


def test_read_mar_manifest_rejects_non_archives(tmp_path: Path) -> None:
    from serving.torchserve.inprocess import ArchiveError

    bogus = tmp_path / "broken.mar"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match=r"broken\.mar"):
        read_mar_manifest(bogus)


def test_torchserve_loader_rejects_a_handler_module_with_two_classes(tmp_path: Path) -> None:
    """TorchServe's loader wants exactly one class in the handler file; ours must obey that rule."""
    from exporters.export import HANDLER_FILE

    handler_file = tmp_path / "mnist_handler.py"
    handler_file.write_text(HANDLER_FILE.read_text() + "\n\nclass Extra(ValueError):\n    pass\n")
    export_torchscript(Classifier(DenseNet()).eval(), str(tmp_path / "model.pt"))
    mar = build_mar("mnist", 1, tmp_path / "model.pt", tmp_path / "export", handler=handler_file)
    with pytest.raises(ValueError, match="Expected only one class"):
        InProcessHandler(mar, tmp_path / "unpacked")


def test_form_encoded_body_gets_a_helpful_message(handler: InProcessHandler) -> None:
    [reply] = handler.handle([None])
    assert reply.status == 400
    assert "Content-Type: application/json" in reply.body["message"]
