"""Schemathesis against the real gateway (``python -m gateway``, granian, the embedded PyTorch model):
every operation in ``/openapi.json`` is fuzzed with schema-valid and schema-invalid requests, and the
answers must match the document: no 5xx, only documented statuses, content types and bodies; a
schema-valid request is served and a schema-invalid one is refused with a 4xx.

What JSON Schema cannot say is set up here: the model, version, label and backend that this
deployment serves (pinned below, they come from the routing file and the store), and real PNG/JPEG
bytes for the image bodies, file parts and base64 strings (``gateway.openapi.IMAGE_FORMAT``).
Every operation runs schemathesis' examples, coverage (boundary values, every type mutation, each
method the path does not list, a missing or malformed Content-Type) and fuzzing phases, positive and
negative; fuzzing is bounded by ``MAX_EXAMPLES`` and generation is derandomized, so a run is repeatable.

Tests are generated at collection from ``gateway.openapi.document()``, and the fixture checks that the
server's ``/openapi.json`` is exactly that document: ``schemathesis.pytest.from_fixture`` (loading the
schema from the running server) fails on pytest 9, which removed ``Item._nodeid`` (schemathesis 4.32).
Under pytest 9 the items also all show the same node id; the failure report names the operation.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.openapi import IMAGE_FORMAT, document
from model_store import ModelStore
from tests.integration.gateway.conftest import running_gateway

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 10.0
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",  # a method the path does not list: 405 with Allow
    "allow_header_conformance",
)


@st.composite
def _images(draw: st.DrawFn, image_format: str) -> bytes:
    """A small PNG or JPEG of any size up to 40x40 (the gateway resizes it to 28x28)."""
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA"] if image_format == "PNG" else ["L", "RGB"]))
    channels = len(mode)
    pixels = draw(st.binary(min_size=width * height * channels, max_size=width * height * channels))
    buffer = io.BytesIO()
    Image.frombytes(mode, (width, height), pixels).save(buffer, format=image_format)
    return buffer.getvalue()


PNGS = _images("PNG")
JPEGS = _images("JPEG")
schemathesis.openapi.media_type("image/png", PNGS)
schemathesis.openapi.media_type("image/jpeg", JPEGS)
schemathesis.openapi.format(
    IMAGE_FORMAT,
    st.tuples(
        st.sampled_from(["", "data:image/png;base64,"]),
        st.one_of(PNGS, JPEGS).map(lambda data: base64.b64encode(data).decode()),
    ).map("".join),
)

# This deployment: model `mnist` (version 1 in the store, labelled `stable`) on the embedded PyTorch
# backend only. Other names get 404 / 400, which the document says; pinning them lets the fuzzer
# reach the body checks and the successful answers.
ROUTING = "models: {mnist: {backends: {embedded-pytorch: 1}, labels: {stable: 1}}}\n"
CONFIG = {
    "seed": 1,
    "parameters": {
        "path.model": "mnist",
        "path.version": 1,
        "path.label": "stable",
        "query.backend": "pytorch",
        "header.X-Gateway-Backend": "embedded-pytorch",
    },
    "request-timeout": REQUEST_TIMEOUT_S,
    "checks": {
        "enabled": False,
        **{name: {"enabled": True} for name in CHECKS},
        # More than 256 images is schema-invalid (maxItems) and answered 413, as documented.
        "negative_data_rejection": {
            "enabled": True,
            "expected-statuses": ["400", "401", "404", "405", "413", "415"],
        },
        # 404 for a model/version/label this deployment lacks; 413 for a body over 4 MiB, which a
        # schema cannot bound (256 images of 784 long decimals are about 4.2 MB). No 400, no 5xx.
        "positive_data_acceptance": {"enabled": True, "expected-statuses": ["2xx", "404", "413"]},
    },
}


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory, exported_store: ModelStore) -> Iterator[str]:
    """The real server, serving the document the tests are generated from."""
    root = tmp_path_factory.mktemp("openapi-fuzz")
    env = {"GATEWAY_MODEL_STORE": str(exported_store.root), "GATEWAY_GRACEFUL_TIMEOUT_S": "10"}
    with running_gateway(root, ROUTING, env) as running:
        base = running.base
        with urllib.request.urlopen(base + "/openapi.json", timeout=REQUEST_TIMEOUT_S) as response:
            served = json.load(response)
        # The tests below are generated (at collection) from the same document the server serves.
        assert served == DOCUMENT
        yield base
    assert running.process.returncode == 0, running.log_tail()


DOCUMENT = json.loads(json.dumps(document()))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=timedelta(seconds=REQUEST_TIMEOUT_S),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
def test_gateway_matches_its_openapi_document(case: schemathesis.Case, gateway_url: str) -> None:
    case.call_and_validate(base_url=gateway_url, timeout=REQUEST_TIMEOUT_S)
