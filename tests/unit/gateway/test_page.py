"""The "draw a digit" page and Swagger UI as the gateway serves them: from installed files, public,
nothing fetched from elsewhere. ``tests/browser/test_page.py`` drives them in a real browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import openapi

PAGE_DIR = Path(openapi.__file__).resolve().parent / "page"
# src/href of a script, stylesheet or image, and any absolute URL in our own files.
_REMOTE = re.compile(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@pytest.mark.parametrize("path", ["/", "/try"])
def test_the_page_and_its_files(client: FlaskClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<canvas id="pad" width="280" height="280"' in html and "Classify" in html
    for asset, mimetype in (("page/page.js", "text/javascript"), ("page/page.css", "text/css")):
        assert f'"{asset}"' in html
        response = client.get("/" + asset)
        assert response.status_code == 200 and response.mimetype == mimetype, asset
        again = client.get("/" + asset, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304, asset  # revalidated, not sent again


def test_docs_is_swagger_ui_from_installed_files(client: FlaskClient) -> None:
    html = client.get("/docs").get_data(as_text=True)
    assert "docs/swagger-ui-bundle.js" in html and "page/docs.js" in html and "openapi.json" in html
    bundle = client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and b"SwaggerUIBundle" in bundle.get_data()
    assert client.get("/docs/swagger-ui.css").status_code == 200
    initializer = client.get("/page/docs.js").get_data(as_text=True)
    assert 'url: "openapi.json"' in initializer and "validatorUrl: null" in initializer


def test_missing_files_are_404_in_the_error_shape(client: FlaskClient) -> None:
    for path in ("/page/nope.js", "/page/../api.py", "/docs/nope.js", "/docs/../../flask/__init__.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"


def test_page_and_docs_need_no_api_key(make_app: Callable[..., Flask]) -> None:
    client = make_app(api_keys=("k1",)).test_client()
    for path in ("/", "/try", "/page/page.js", "/page/page.css", "/docs", "/docs/swagger-ui-bundle.js"):
        assert client.get(path).status_code == 200, path
    assert client.get("/v1/models/mnist").status_code == 401  # what the page calls still needs one
    assert client.get("/v1/models/mnist", headers={"X-API-Key": "k1"}).status_code == 200


def test_our_files_fetch_nothing_from_elsewhere() -> None:
    for file in PAGE_DIR.iterdir():
        assert not _REMOTE.search(file.read_text()), file.name


def test_the_examples_are_valid_sevens() -> None:
    seven = openapi.EXAMPLE_SEVEN
    assert len(seven) == 28 and all(len(row) == 28 for row in seven)
    assert all(0 <= value <= 1 for row in seven for value in row) and sum(map(sum, seven)) > 30
    paths = openapi.document()["paths"]
    friendly = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert friendly == {"image": seven}
    v1 = paths["/v1/models/{model}:predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert v1 == {"instances": [[value for row in seven for value in row]]}
    assert "/" in paths and "get" in paths["/docs"]
