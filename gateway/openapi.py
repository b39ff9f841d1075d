"""The OpenAPI 3 document, shown by Swagger UI at ``/docs`` (its files come installed: it works offline).

The document says exactly what the gateway accepts, as far as JSON Schema can say it: a request that
fits the schema is served (or refused only for a reason of the moment, such as an unknown model
or backend, a version missing from the store, or a backend being down), and one that does not fit it
gets a 4xx. ``tests/integration/gateway/test_openapi_fuzz.py`` checks this against the real server
with schemathesis. What JSON Schema cannot say is in the descriptions: which models, versions, labels
and backends exist (the routing file and the model store decide), and that an image string or file
must really decode as a PNG or JPEG.
"""

from __future__ import annotations

from typing import Any

from gateway.codecs.image import SIDE
from gateway.codecs.tensors import HIGH, ITEM_SHAPE, ITEM_SIZE, LOW
from gateway.registry import BACKEND_NAMES

__all__ = ["EXAMPLE_SEVEN", "IMAGE_FORMAT", "document"]

_MAX_INSTANCES = 256  # the default GATEWAY_MAX_INSTANCES: the document states the default limits
_BACKENDS = (*BACKEND_NAMES, "tensorflow", "pytorch")
IMAGE_FORMAT = "image-base64"
"""The string format of a base64 PNG/JPEG (a custom OpenAPI format: any decodable PNG or JPEG)."""


# The request examples: a 7 drawn on the page at / and prepared as MNIST was (light on dark, in a 20x20
# box, centred by mass; 5 grey levels), so Swagger UI's "Try it out" classifies a digit, not a black square.
_SEVEN_ROWS = """
............................
............................
............................
............................
............................
............................
............................
............................
.....++****######***+.......
.....################.......
.....-+----......-##-.......
.................+#*........
.................##-........
................*#*.........
...............-##..........
...............*#+..........
..............-##...........
..............*#+...........
.............-##............
.............*#+............
............-##.............
............*#+.............
...........-##..............
...........+#+..............
...........##-..............
..........-#*...............
..........+#+...............
..........-#-...............
"""
_LEVELS = {".": 0.0, "-": 0.25, "+": 0.5, "*": 0.75, "#": 1.0}
EXAMPLE_SEVEN: list[list[float]] = [[_LEVELS[c] for c in row] for row in _SEVEN_ROWS.split()]
"""One 28x28 image of a 7, numbers in [0, 1]: the JSON request examples."""


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_REQUEST_ID = {
    "description": "The client's request id if it matches ^[A-Za-z0-9._:-]{1,128}$, else a generated one",
    "schema": {"type": "string"},
}
_ANSWERED_BY = {
    "X-Request-ID": _REQUEST_ID,
    "X-Gateway-Backend": {"description": "Backend that answered", "schema": {"type": "string"}},
    "X-Model-Version": {
        "description": "Model version that answered ('default' if the server did not say)",
        "schema": {"type": "string"},
    },
    "X-Gateway-Attempts": {
        "description": "Backends tried, in order, comma-separated (more than one after a failover)",
        "schema": {"type": "string"},
    },
    "Server-Timing": {
        "description": "gateway, backend and total durations in ms",
        "schema": {"type": "string"},
    },
}
_IDS = {"X-Request-ID": _REQUEST_ID}
_MODEL = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "A model the routing file lists (404 otherwise)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", "example": "mnist"},
}
_BACKEND_CHOICE = {
    "type": "string",
    "enum": list(_BACKENDS),
    "description": "A backend name, or a framework (its heaviest-weighted backend)",
}
_SELECT = [
    {
        "name": "backend",
        "in": "query",
        "schema": _BACKEND_CHOICE,
        "description": "Explicit backend or framework; it must be one the routing file lists for the model "
        "(400 otherwise). Disables failover.",
    },
    {
        "name": "X-Gateway-Backend",
        "in": "header",
        "schema": _BACKEND_CHOICE,
        "description": "Same as ?backend= (the header wins when both are sent)",
    },
    {
        "name": "X-Request-ID",
        "in": "header",
        "schema": {"type": "string"},
        "description": "Echoed back if it matches ^[A-Za-z0-9._:-]{1,128}$; any other value is replaced "
        "by a generated id (never refused)",
    },
]
# Who may answer what. 401 comes only while GATEWAY_API_KEYS is set (the health, spec and docs pages
# never ask for a key); 415 also answers a Content-Encoding other than identity, on any path.
_READ = ("401", "415")
_BODY = ("408", "413", "501")  # what reading a body can end in, before any parsing
_UPSTREAM = ("429", "502", "503", "504")
# No key needed unless GATEWAY_API_KEYS is set; then X-API-Key or Authorization: Bearer.
_OPEN: list[dict[str, list[str]]] = [{}, {"apiKey": []}, {"bearer": []}]


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _ref("responses", f"E{code}") for code in sorted(codes)}


def _v1(summary: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": "TF Serving REST predict. The body is JSON (``application/x-www-form-urlencoded`` "
            "is read as JSON too, for ``curl -d``). Row format ``instances`` answers ``predictions``; "
            "columnar ``inputs`` answers ``outputs``. One request holds 1 to 256 images "
            "(``GATEWAY_MAX_INSTANCES``; 413 above); the body is at most 4 MiB (``GATEWAY_MAX_BODY_BYTES``; "
            "413) and nested at most 8 deep (``GATEWAY_MAX_JSON_DEPTH``; 400).",
            "tags": ["predict"],
            "security": _OPEN,
            "parameters": [_MODEL, *extra, *_SELECT],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _schema("V1Request"),
                        "example": {"instances": [[v for row in EXAMPLE_SEVEN for v in row]]},
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "predictions (row format) or outputs (columnar): 10 probabilities each",
                    "headers": _ANSWERED_BY,
                    "content": _json(_schema("V1Response")),
                },
                **_errors("400", "404", *_READ, *_BODY, *_UPSTREAM),
            },
        }
    }


def _classify(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": "Images as multipart upload(s) (every file part is an image, whatever its "
            "field name; other fields are ignored), a raw PNG/JPEG body, or JSON with "
            f"{SIDE}x{SIDE} / {SIDE * SIDE} numbers in [0, 1] or base64 PNG/JPEG strings (a data: URL is "
            f"fine). Any PNG/JPEG mode is converted to 8-bit grayscale and resized to {SIDE}x{SIDE} if "
            "neither side exceeds 1024 pixels "
            "(``GATEWAY_MAX_IMAGE_SIDE``; 400 above, and for bytes that are not a PNG or JPEG). Digits must "
            "be light on dark, like MNIST. 1 to 256 images per request (413 above).",
            "tags": ["predict"],
            "security": _OPEN,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        },
                        "encoding": {"file": {"contentType": "image/png, image/jpeg"}},
                    },
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {
                        "schema": _schema("FriendlyRequest"),
                        "example": {"image": EXAMPLE_SEVEN},
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "one digit and its probabilities per image",
                    "headers": _ANSWERED_BY,
                    "content": _json(_schema("FriendlyResponse")),
                },
                **_errors("400", "404", *_READ, *_BODY, *_UPSTREAM),
            },
        }
    }


def _get(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    errors: tuple[str, ...],
    params: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    security: bool = False,
) -> dict[str, Any]:
    """``security=False``: public, even while GATEWAY_API_KEYS is set."""
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "security": _OPEN if security else [{}],
            "parameters": params or [],
            "responses": {
                "200": {"description": "OK", "headers": _IDS, **ok},
                **(extra or {}),
                **_errors(*errors),
            },
        }
    }


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_IDS, **(headers or {})},
        "content": _json(_schema("Error")),
    }


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_ERROR_RESPONSES = {
    "E400": _error("invalid_input: the body, a parameter or the backend choice is not acceptable"),
    "E401": _error(
        "unauthorized: API key missing or wrong (only while GATEWAY_API_KEYS is set)",
        {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
    ),
    "E404": _error("not_found: unknown model, version or label"),
    "E408": _error("request_timeout: the body took longer than GATEWAY_BODY_READ_TIMEOUT_S to arrive"),
    "E413": _error("payload_too_large: body above GATEWAY_MAX_BODY_BYTES or more than 256 images"),
    "E415": _error(
        "unsupported_media_type: content type not listed, or a Content-Encoding other than identity"
    ),
    "E429": _error("over_capacity: too many requests in flight in this worker", _RETRY_AFTER),
    "E501": _error("not_implemented: a Transfer-Encoding other than chunked"),
    "E502": _error("bad_backend_response: the backend answered something unusable"),
    "E503": _error("unavailable: no ready backend, or its circuit breaker is open", _RETRY_AFTER),
    "E504": _error("deadline_exceeded: the request's deadline ran out"),
}
_N = {"type": "number", "minimum": LOW, "maximum": HIGH}


def _nested(shape: tuple[int, ...]) -> dict[str, Any]:
    """Nested JSON lists of ``shape``, numbers in the model's range at the bottom."""
    if not shape:
        return _N
    return {"type": "array", "minItems": shape[0], "maxItems": shape[0], "items": _nested(shape[1:])}


_SCHEMAS: dict[str, Any] = {
    "Flat": {
        "description": f"One instance as {ITEM_SIZE} numbers in [{LOW:g}, {HIGH:g}], row by row",
        **_nested((ITEM_SIZE,)),
    },
    "Grid": {
        "description": f"One instance as nested lists of shape {list(ITEM_SHAPE)}, "
        f"numbers in [{LOW:g}, {HIGH:g}]",
        **_nested(ITEM_SHAPE),
    },
    "Image": {"oneOf": [_schema("Flat"), _schema("Grid")]},
    "FlatBatch": {
        "type": "array",
        "minItems": 1,
        "maxItems": _MAX_INSTANCES,
        "items": _schema("Flat"),
    },
    "GridBatch": {
        "type": "array",
        "minItems": 1,
        "maxItems": _MAX_INSTANCES,
        "items": _schema("Grid"),
    },
    "Batch": {
        "description": f"1 to {_MAX_INSTANCES} instances, all in the same form (all flat or all nested)",
        "oneOf": [_schema("FlatBatch"), _schema("GridBatch")],
    },
    "NamedImage": {
        "type": "object",
        "required": ["image"],
        "additionalProperties": False,
        "properties": {"image": _schema("Image")},
    },
    "Instances": {
        "description": f"Row format: 1 to {_MAX_INSTANCES} instances, all in the same form, or objects "
        '{"image": ...} (each flat or nested)',
        "oneOf": [
            _schema("FlatBatch"),
            _schema("GridBatch"),
            {"type": "array", "minItems": 1, "maxItems": _MAX_INSTANCES, "items": _schema("NamedImage")},
        ],
    },
    "Inputs": {
        "description": 'Columnar: a batch, or {"image": batch}',
        "oneOf": [
            _schema("FlatBatch"),
            _schema("GridBatch"),
            {
                "type": "object",
                "required": ["image"],
                "additionalProperties": False,
                "properties": {"image": _schema("Batch")},
            },
        ],
    },
    "V1Request": {
        "description": "Exactly one of instances / inputs; no other fields",
        "oneOf": [
            {
                "type": "object",
                "required": ["instances"],
                "additionalProperties": False,
                "properties": {
                    "signature_name": _schema("SignatureName"),
                    "instances": _schema("Instances"),
                },
            },
            {
                "type": "object",
                "required": ["inputs"],
                "additionalProperties": False,
                "properties": {"signature_name": _schema("SignatureName"), "inputs": _schema("Inputs")},
            },
        ],
    },
    "SignatureName": {"type": "string", "enum": ["serving_default"]},
    "Probabilities": {
        "type": "array",
        "minItems": 10,
        "maxItems": 10,
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "description": "Probability of each digit 0-9",
    },
    "V1Response": {
        "oneOf": [
            {
                "type": "object",
                "required": ["predictions"],
                "additionalProperties": False,
                "properties": {"predictions": {"type": "array", "items": _schema("Probabilities")}},
            },
            {
                "type": "object",
                "required": ["outputs"],
                "additionalProperties": False,
                "properties": {"outputs": {"type": "array", "items": _schema("Probabilities")}},
            },
        ]
    },
    "EncodedImage": {
        "type": "string",
        "format": IMAGE_FORMAT,
        "description": "A PNG or JPEG file in base64 (standard alphabet, padded, no line breaks), "
        "optionally as a data: URL",
    },
    "FriendlyImage": {"oneOf": [_schema("Flat"), _schema("Grid"), _schema("EncodedImage")]},
    "FriendlyRequest": {
        "description": "Exactly one of image / images; no other fields",
        "oneOf": [
            {
                "type": "object",
                "required": ["image"],
                "additionalProperties": False,
                "properties": {"image": _schema("FriendlyImage")},
            },
            {
                "type": "object",
                "required": ["images"],
                "additionalProperties": False,
                "properties": {
                    "images": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": _MAX_INSTANCES,
                        "items": _schema("FriendlyImage"),
                    }
                },
            },
        ],
    },
    "FriendlyResponse": {
        "type": "object",
        "required": ["model", "backend", "version", "predictions"],
        "properties": {
            "model": {"type": "string"},
            "backend": {"type": "string"},
            "version": {"type": "string"},
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["digit", "probabilities"],
                    "properties": {
                        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
                        "probabilities": _schema("Probabilities"),
                    },
                },
            },
        },
    },
    "BackendReport": {
        "type": "object",
        "required": ["name", "framework", "ready", "versions"],
        "properties": {
            "name": {"type": "string"},
            "framework": {"type": "string", "enum": ["tensorflow", "pytorch"]},
            "ready": {"type": "boolean"},
            "versions": {"type": "array", "items": {"type": "integer"}},
            "detail": {"type": "string", "description": "why it is not ready"},
        },
    },
    "ModelStatus": {
        "type": "object",
        "required": ["name", "ready", "backends"],
        "properties": {
            "name": {"type": "string"},
            "ready": {"type": "boolean", "description": "at least one backend is ready"},
            "backends": {"type": "array", "items": _schema("BackendReport")},
        },
    },
    "Models": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
    },
    "Readiness": {
        "type": "object",
        "required": ["ready", "models"],
        "properties": {
            "ready": {"type": "boolean", "description": "every routed model has a ready backend"},
            "models": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["ready", "backends"],
                    "properties": {
                        "ready": {"type": "boolean"},
                        "backends": {"type": "array", "items": _schema("BackendReport")},
                    },
                },
            },
        },
    },
    "Liveness": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["alive"]}},
    },
    "Reloaded": {
        "type": "object",
        "required": ["reloaded", "source", "models"],
        "properties": {
            "reloaded": {"type": "boolean", "enum": [True]},
            "source": {"type": "string", "description": "where the routing table came from"},
            "models": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "request_id"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [
                            "internal",
                            "invalid_input",
                            "unauthorized",
                            "not_found",
                            "method_not_allowed",
                            "request_timeout",
                            "payload_too_large",
                            "unsupported_media_type",
                            "over_capacity",
                            "not_implemented",
                            "bad_backend_response",
                            "unavailable",
                            "deadline_exceeded",
                        ],
                    },
                    "message": {"type": "string"},
                    "request_id": {"type": "string"},
                },
            }
        },
    },
}


def document() -> dict[str, Any]:
    with_model = _classify(
        "Classify images with one model: uploads, raw PNG/JPEG, JSON arrays or base64", [_MODEL, *_SELECT]
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "MNIST serving gateway",
            "version": "1",
            "description": "One API over TF Serving and TorchServe; TF Serving / KServe V1 compatible. "
            'Errors are {"error": {"code", "message", "request_id"}}. A method a path does not '
            "list (OPTIONS included) gets 405 with Allow; an unknown path gets 404. The Open Inference "
            "Protocol (KServe V2) endpoints under /v2 follow that protocol's own specification and are "
            "not described here.",
        },
        "paths": {
            "/v1/models/{model}:predict": _v1("TF Serving compatible predict (default version)", []),
            "/v1/models/{model}/versions/{version}:predict": _v1(
                "Predict with one version",
                [
                    {
                        "name": "version",
                        "in": "path",
                        "required": True,
                        "description": "A version in the model store (404 otherwise)",
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
            ),
            "/v1/models/{model}/labels/{label}:predict": _v1(
                "Predict with a labelled version (routing file labels)",
                [
                    {
                        "name": "label",
                        "in": "path",
                        "required": True,
                        "description": "A label the routing file gives the model (404 otherwise)",
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
                    }
                ],
            ),
            "/v1/models/{model}:classify": with_model,
            "/predict": _classify(
                "Classify images with the default model (GATEWAY_DEFAULT_MODEL)", [*_SELECT]
            ),
            "/v1/models": _get(
                "Routed models", "status", {"content": _json(_schema("Models"))}, _READ, security=True
            ),
            "/v1/models/{model}": _get(
                "Per-backend readiness and versions",
                "status",
                {"content": _json(_schema("ModelStatus"))},
                ("404", *_READ),
                [_MODEL],
                security=True,
            ),
            "/livez": _get("The process is up", "health", {"content": _json(_schema("Liveness"))}, ("415",)),
            "/readyz": _get(
                "Every routed model has a ready backend",
                "health",
                {"content": _json(_schema("Readiness"))},
                ("415",),
                extra={
                    "503": {
                        "description": "not ready: the same body, with ready false",
                        "headers": _IDS,
                        "content": _json(_schema("Readiness")),
                    }
                },
            ),
            "/metrics": _get(
                "Prometheus metrics (text exposition format)",
                "health",
                {"content": {"text/plain": {"schema": {"type": "string"}}}},
                ("415",),
            ),
            "/openapi.json": _get("This document", "docs", {"content": _json({"type": "object"})}, ("415",)),
            "/": _get(
                "A page to draw a digit and see every backend's answer (also at /try; offline, its "
                "files under /page/)",
                "docs",
                {"content": {"text/html": {"schema": {"type": "string"}}}},
                ("415",),
            ),
            "/docs": _get(
                "Swagger UI for this document (offline: its files are served under /docs/)",
                "docs",
                {"content": {"text/html": {"schema": {"type": "string"}}}},
                ("415",),
            ),
            "/admin/reload": {
                "post": {
                    "summary": "Re-read the routing file (this worker; the others poll it)",
                    "description": "Disabled (404) unless GATEWAY_ADMIN_TOKEN is set; then it needs "
                    "Authorization: Bearer <token> (401 otherwise), never an API key.",
                    "tags": ["admin"],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "reloaded",
                            "headers": _IDS,
                            "content": _json(_schema("Reloaded")),
                        },
                        "400": _error(
                            "invalid_input: no routing file configured, or the file was rejected "
                            "(the previous table stays in force)"
                        ),
                        "401": _error(
                            "unauthorized: admin token missing or wrong",
                            {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}},
                        ),
                        "404": _error("not_found: admin endpoints are disabled (GATEWAY_ADMIN_TOKEN unset)"),
                        **_errors(*_BODY, "415"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": _SCHEMAS,
            "responses": _ERROR_RESPONSES,
        },
    }
