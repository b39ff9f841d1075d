"""The OpenAPI 3 document and a self-contained docs page (no CDN: it must work offline)."""

from __future__ import annotations

from typing import Any

__all__ = ["DOCS_HTML", "document"]

_ERROR = {"$ref": "#/components/responses/Error"}
_IDS = {
    "X-Request-ID": {
        "description": "Request id (the client's, if valid, else generated)",
        "schema": {"type": "string"},
    },
    "X-Gateway-Backend": {"description": "Backend that answered", "schema": {"type": "string"}},
    "X-Model-Version": {
        "description": "Model version that answered ('default' if the server did not say)",
        "schema": {"type": "string"},
    },
    "Server-Timing": {
        "description": "gateway, backend and total durations in ms",
        "schema": {"type": "string"},
    },
}
_MODEL = {"name": "model", "in": "path", "required": True, "schema": {"type": "string", "example": "mnist"}}
_BACKEND = [
    {
        "name": "backend",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Explicit backend or framework",
    },
    {
        "name": "X-Gateway-Backend",
        "in": "header",
        "schema": {"type": "string"},
        "description": "Same as ?backend=",
    },
    {"name": "X-Request-ID", "in": "header", "schema": {"type": "string"}},
]
_IMAGE = {"type": "array", "description": "28x28 or 784 numbers in [0, 1]", "items": {}}
_ERRORS = {code: _ERROR for code in ("400", "401", "404", "413", "415", "429", "502", "503", "504")}


def _v1(summary: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "tags": ["predict"],
            "parameters": [_MODEL, *extra, *_BACKEND],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/V1Request"},
                        "example": {"instances": [[0.0] * 784]},
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "predictions (row format) or outputs (columnar)",
                    "headers": _IDS,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V1Response"}}},
                },
                **_ERRORS,
            },
        }
    }


def _classify() -> dict[str, Any]:
    image_schema = {"type": "string", "format": "binary"}
    return {
        "post": {
            "summary": "Classify images: upload(s), raw PNG/JPEG, JSON arrays or base64",
            "tags": ["predict"],
            "parameters": [*_BACKEND],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": {"file": image_schema}},
                    },
                    "image/png": {"schema": image_schema},
                    "image/jpeg": {"schema": image_schema},
                    "application/json": {"schema": {"$ref": "#/components/schemas/FriendlyRequest"}},
                },
            },
            "responses": {
                "200": {
                    "description": "one digit and its probabilities per image",
                    "headers": _IDS,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/FriendlyResponse"}}
                    },
                },
                **_ERRORS,
            },
        }
    }


def _get(
    summary: str, tag: str, params: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "parameters": params or [],
            "responses": {"200": {"description": "OK"}, **(extra or {})},
        }
    }


def document() -> dict[str, Any]:
    classify = _classify()
    with_model = {**classify["post"], "parameters": [_MODEL, *_BACKEND]}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "MNIST serving gateway",
            "version": "1",
            "description": "One API over TF Serving and TorchServe; TF Serving / KServe V1 compatible.",
        },
        "paths": {
            "/v1/models/{model}:predict": _v1("TF Serving compatible predict (default version)", []),
            "/v1/models/{model}/versions/{version}:predict": _v1(
                "Predict with one version",
                [{"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}],
            ),
            "/v1/models/{model}/labels/{label}:predict": _v1(
                "Predict with a labelled version (routing file labels)",
                [{"name": "label", "in": "path", "required": True, "schema": {"type": "string"}}],
            ),
            "/v1/models/{model}:classify": {"post": with_model},
            "/predict": classify,
            "/v1/models": _get("Routed models", "status"),
            "/v1/models/{model}": _get(
                "Per-backend readiness and versions", "status", [_MODEL], {"404": _ERROR}
            ),
            "/livez": _get("The process is up", "health"),
            "/readyz": _get(
                "Every routed model has a ready backend",
                "health",
                None,
                {"503": {"description": "not ready"}},
            ),
            "/metrics": _get("Prometheus metrics", "health"),
            "/admin/reload": {
                "post": {
                    "summary": "Re-read the routing file (this worker; the others poll it)",
                    "tags": ["admin"],
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "reloaded"},
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "V1Request": {
                    "type": "object",
                    "properties": {
                        "signature_name": {"type": "string", "enum": ["serving_default"]},
                        "instances": {"type": "array", "items": {}},
                        "inputs": {},
                    },
                },
                "V1Response": {
                    "type": "object",
                    "properties": {
                        "predictions": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number"}},
                        },
                        "outputs": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                    },
                },
                "FriendlyRequest": {
                    "type": "object",
                    "properties": {
                        "image": {"oneOf": [_IMAGE, {"type": "string", "description": "base64 PNG/JPEG"}]},
                        "images": {"type": "array", "items": {}},
                    },
                },
                "FriendlyResponse": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "backend": {"type": "string"},
                        "version": {"type": "string"},
                        "predictions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "digit": {"type": "integer"},
                                    "probabilities": {"type": "array", "items": {"type": "number"}},
                                },
                            },
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "request_id": {"type": "string"},
                            },
                        }
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "error envelope",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
        },
    }


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MNIST gateway API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
.op{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:3.5rem;font-weight:600;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}code,pre,textarea{font:13px ui-monospace,monospace}
textarea{width:100%;height:6rem}pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:20rem}
</style></head><body>
<h1>MNIST serving gateway</h1>
<p>Machine-readable spec: <a href="openapi.json">/openapi.json</a>. Try a call below (JSON bodies only;
for images use <code>curl -F file=@digit.png .../predict</code>).</p>
<div id="ops"></div>
<script>
fetch("openapi.json").then(r => r.json()).then(spec => {
  const root = document.getElementById("ops");
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const div = document.createElement("div"); div.className = "op";
      const body = op.requestBody && op.requestBody.content["application/json"];
      const example = body && body.example ? JSON.stringify(body.example) : (body ? "{}" : "");
      div.innerHTML = `<span class="m ${method}">${method}</span> <code></code> — <span></span>
        <details><summary>try it</summary>
        <input size="60"> ${body ? "<textarea></textarea>" : ""}<button>send</button><pre></pre></details>`;
      div.querySelector("code").textContent = path;
      div.querySelector("span:not(.m)").textContent = op.summary || "";
      const input = div.querySelector("input"); input.value = path.replace("{model}", "mnist");
      const area = div.querySelector("textarea"); if (area) area.value = example;
      div.querySelector("button").onclick = async () => {
        const init = {method: method.toUpperCase(), headers: {}};
        if (area) { init.body = area.value; init.headers["Content-Type"] = "application/json"; }
        const out = div.querySelector("pre");
        try {
          const r = await fetch(input.value, init);
          const headers = [...r.headers].map(([k, v]) => k + ": " + v).join("\\n");
          out.textContent = r.status + "\\n" + headers + "\\n\\n" + await r.text();
        } catch (e) { out.textContent = String(e); }
      };
      root.appendChild(div);
    }
  }
});
</script></body></html>
"""
