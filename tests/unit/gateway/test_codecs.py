"""Codecs: every accepted body form decodes to float32 [N, 28, 28]; every bad one is a clear 4xx."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.codecs import image, json_body, v1_json
from gateway.errors import GatewayError, InvalidInput, PayloadTooLarge, UnsupportedMediaType

LIMITS = json_body.Limits(max_instances=4, max_json_depth=8, max_image_side=64)
IMAGE = [[0.5] * 28 for _ in range(28)]
FLAT = [0.25] * 784


def png(size: tuple[int, int] = (28, 28), mode: str = "L", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=255 if mode == "L" else (255, 255, 255)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("payload", "count", "columnar"),
    [
        ({"instances": [IMAGE]}, 1, False),
        ({"instances": [FLAT, FLAT]}, 2, False),
        ({"instances": [{"image": IMAGE}, {"image": FLAT}]}, 2, False),
        ({"signature_name": "serving_default", "instances": [IMAGE]}, 1, False),
        ({"inputs": [IMAGE, IMAGE, IMAGE]}, 3, True),
        ({"inputs": {"image": [FLAT]}}, 1, True),
    ],
)
def test_v1_bodies_decode(payload: dict[str, object], count: int, columnar: bool) -> None:
    decoded = v1_json.decode_v1(json.dumps(payload).encode(), LIMITS)
    assert decoded.images.shape == (count, 28, 28) and decoded.images.dtype == np.float32
    assert decoded.columnar is columnar


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        (b"{not json", InvalidInput, "malformed JSON"),
        (b"", InvalidInput, "empty body"),
        (b'{"instances": [NaN]}', InvalidInput, "NaN"),
        (b'{"instances": [Infinity]}', InvalidInput, "Infinity"),
        (b'{"instances": [-Infinity]}', InvalidInput, "Infinity"),
        (b'{"instances": [[1e400]]}', InvalidInput, "finite"),
        (b"[" * 50_000 + b"]" * 50_000, InvalidInput, "nested deeper"),
        (b"[]", InvalidInput, "JSON object"),
        (b'{"instances": []}', InvalidInput, "no instances"),
        (json.dumps({"instances": [FLAT] * 5}).encode(), PayloadTooLarge, "limit is 4"),
        (json.dumps({"instances": [[0.1] * 785]}).encode(), InvalidInput, "[785]"),
        (json.dumps({"instances": [[[0.1] * 28] * 27]}).encode(), InvalidInput, "[27, 28]"),
        (json.dumps({"instances": [[[[0.1] * 28] * 28]]}).encode(), InvalidInput, "shape"),
        (json.dumps({"instances": [[2.0] * 784]}).encode(), InvalidInput, "[0, 1]"),
        (json.dumps({"instances": [["a"] * 784]}).encode(), InvalidInput, "strings"),
        (json.dumps({"instances": [[True] * 784]}).encode(), InvalidInput, "booleans"),
        (json.dumps({"instances": [[0.0] * 783 + [True]]}).encode(), InvalidInput, "booleans"),  # not 1.0
        (json.dumps({"instances": [[1.0000000000000002] * 784]}).encode(), InvalidInput, "[0, 1]"),  # >1
        (json.dumps({"instances": [[-1e-46] * 784]}).encode(), InvalidInput, "[0, 1]"),  # float32 -> 0.0
        (json.dumps({"instances": [{"image": [False] + [0.0] * 783}]}).encode(), InvalidInput, "booleans"),
        (b"\xef\xbb\xbf" + json.dumps({"instances": [[0.0] * 784]}).encode(), InvalidInput, "UTF-8"),
        (json.dumps({"instances": [[0.0] * 784]}).encode("utf-16"), InvalidInput, "UTF-8"),
        (json.dumps({"instances": [[0.0] * 784]}).encode("utf-32-le"), InvalidInput, "UTF-8"),
        (json.dumps({"instances": [FLAT, [0.1]]}).encode(), InvalidInput, "rectangular"),
        (json.dumps({"instances": [IMAGE], "inputs": [IMAGE]}).encode(), InvalidInput, "exactly one"),
        (json.dumps({"instances": [IMAGE], "signature_name": "x"}).encode(), InvalidInput, "signature_name"),
        (b"\xff\xfe{}", InvalidInput, "malformed JSON"),
    ],
)
def test_v1_rejects(body: bytes, error: type[GatewayError], fragment: str) -> None:
    with pytest.raises(error) as caught:
        v1_json.decode_v1(body, LIMITS)
    assert fragment in caught.value.message
    assert 400 <= caught.value.status < 500


def _general_path(body: bytes, monkeypatch: pytest.MonkeyPatch) -> v1_json.V1Request | GatewayError:
    """What decode_v1 answers without its shortcut for the usual body."""
    with monkeypatch.context() as patch:
        patch.setattr(v1_json, "_usual_instances", lambda body, limits: None)
        try:
            return v1_json.decode_v1(body, LIMITS)
        except GatewayError as error:
            return error


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"instances": [IMAGE]}).encode(),
        json.dumps({"instances": [IMAGE, IMAGE]}, separators=(",", ":")).encode(),
        json.dumps({"instances": [FLAT, FLAT, FLAT]}, indent=2).encode(),
        json.dumps({"instances": [[[0, 1] * 14] * 28]}).encode(),  # integers are numbers too
    ],
)
def test_the_usual_body_is_read_without_python_lists(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    shortcut = v1_json._usual_instances(body, LIMITS)
    assert shortcut is not None, "the shortcut did not take a usual body"
    general = _general_path(body, monkeypatch)
    assert isinstance(general, v1_json.V1Request)
    assert shortcut.dtype == np.float32 and shortcut.tobytes() == general.images.tobytes()


_PIXEL = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from([0, 1, 0.5, 1e-300, 1.0000000000000002, -0.0, -1e-46, 2, "0.5", True, None, [0.5], {}]),
)


@given(
    count=st.integers(1, 5),
    flat=st.booleans(),
    pixel=_PIXEL,
    where=st.integers(0, 783),
    drop=st.booleans(),
    key=st.sampled_from(["instances", "inputs", "instance"]),
    spaces=st.booleans(),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_shortcut_answers_as_the_general_path(
    count: int,
    flat: bool,
    pixel: object,
    where: int,
    drop: bool,
    key: str,
    spaces: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever the body, decode_v1 gives the same array, or the same refusal, with its shortcut."""
    rows = [[0.25] * 784 for _ in range(count)]
    rows[-1][where] = pixel  # type: ignore[call-overload]
    if drop:
        del rows[0][where]
    instances = rows if flat else [[row[i : i + 28] for i in range(0, len(row), 28)] for row in rows]
    separators = (", ", ": ") if spaces else (",", ":")
    body = json.dumps({key: instances}, separators=separators).encode()
    general = _general_path(body, monkeypatch)
    try:
        decoded: v1_json.V1Request | GatewayError = v1_json.decode_v1(body, LIMITS)
    except GatewayError as error:
        decoded = error
    if isinstance(general, GatewayError):
        assert type(decoded) is type(general) and decoded.message == general.message
    else:
        assert isinstance(decoded, v1_json.V1Request)
        assert decoded.images.tobytes() == general.images.tobytes()


def test_the_shortcut_keeps_a_parser_per_thread() -> None:
    bodies = [json.dumps({"instances": [[[i / 10] * 28] * 28] * (1 + i % 3)}).encode() for i in range(10)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            decoded = list(pool.map(lambda body: v1_json._usual_instances(body, LIMITS), bodies))
            for i, images in enumerate(decoded):
                assert images is not None and images.shape == (1 + i % 3, 28, 28)
                assert np.all(images == np.float32(i / 10))


def test_v1_encoding_keeps_the_tf_serving_field_names() -> None:
    probabilities = np.eye(10, dtype=np.float32)[:2]
    assert list(v1_json.encode_v1(probabilities, columnar=False)) == ["predictions"]
    assert list(v1_json.encode_v1(probabilities, columnar=True)) == ["outputs"]


@pytest.mark.parametrize(
    ("content_type", "body", "uploads", "count"),
    [
        ("image/png", png(), [], 1),
        ("image/jpeg", png(fmt="JPEG"), [], 1),
        ("image/png", png(size=(56, 56), mode="RGB"), [], 1),  # resized and converted to grayscale
        ("multipart/form-data; boundary=x", b"", [png(), png()], 2),
        ("application/json", json.dumps({"image": IMAGE}).encode(), [], 1),
        ("application/json", json.dumps({"image": FLAT}).encode(), [], 1),
        ("application/json", json.dumps({"image": base64.b64encode(png()).decode()}).encode(), [], 1),
        (
            "application/json",
            json.dumps(
                {"images": [FLAT, "data:image/png;base64," + base64.b64encode(png()).decode()]}
            ).encode(),
            [],
            2,
        ),
    ],
)
def test_friendly_bodies_decode(content_type: str, body: bytes, uploads: list[bytes], count: int) -> None:
    images = image.decode_friendly(content_type, body, uploads, LIMITS)
    assert images.shape == (count, 28, 28)
    assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\ncorrupt", InvalidInput),
        ("image/png", png(size=(65, 28)), InvalidInput),
        ("image/png", b"GIF89a" + b"\0" * 20, InvalidInput),
        ("application/json", b'{"image": "not base64!"}', InvalidInput),
        ("application/json", b'{"image": 3}', InvalidInput),
        ("application/json", b'{"picture": []}', InvalidInput),
        ("text/plain", b"hello", UnsupportedMediaType),
        ("", b"", UnsupportedMediaType),
    ],
)
def test_friendly_rejects(content_type: str, body: bytes, error: type[GatewayError]) -> None:
    with pytest.raises(error):
        image.decode_friendly(content_type, body, [], LIMITS)


def test_friendly_encoding_gives_digit_per_image() -> None:
    probabilities = np.eye(10, dtype=np.float32)[[7, 2]]
    reply = image.encode_friendly(probabilities)
    assert [item["digit"] for item in reply["predictions"]] == [7, 2]
    assert len(reply["predictions"][0]["probabilities"]) == 10


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_compressed_bodies_are_refused(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        json_body.check_content_encoding(encoding)
    json_body.check_content_encoding(None)
    json_body.check_content_encoding("identity")
