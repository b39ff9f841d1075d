"""The floor app's two ways of answering by itself: a fixed prediction, or a TorchScript's own."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadtests.floorproxy import FIXED_ANSWER, create_app


def _post(app: Any, document: object) -> tuple[str, Any]:
    body = json.dumps(document).encode()
    environ = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    statuses: list[str] = []
    answer = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0], json.loads(answer)


def test_without_a_model_it_answers_a_fixed_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOOR_BACKEND_URL", raising=False)
    monkeypatch.delenv("FLOOR_MODEL", raising=False)
    assert _post(create_app(), {"instances": [[[0.0] * 28] * 28]}) == ("200 OK", FIXED_ANSWER)


def test_with_a_torchscript_it_answers_what_the_model_computes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Softmax(dim=1))
    script = tmp_path / "model.pt"
    with warnings.catch_warnings():  # TorchScript is what the store holds, deprecated or not
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning
        )
        torch.jit.script(model).save(str(script))
    monkeypatch.delenv("FLOOR_BACKEND_URL", raising=False)
    monkeypatch.setenv("FLOOR_MODEL", str(script))
    image = np.random.default_rng(1).random((28, 28)).astype(np.float32)
    status, answer = _post(create_app(), {"instances": [image.tolist()]})
    with torch.inference_mode():
        expected = model(torch.from_numpy(image[None])).numpy()
    assert status == "200 OK"
    np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, rtol=1e-5)
