"""TF Serving's REST JSON for predict: request bodies to arrays, output arrays to JSON.

Row format (``"instances"``) and columnar format (``"inputs"``), with TF Serving's rules: not
both at once; with one named input, instances may be bare values or ``{"image": ...}`` objects;
with one named output, its name is dropped from the answer. ``NaN``/``Infinity`` tokens are
accepted as TF Serving accepts them; nesting deeper than the parser's limit is a 400, not a crash.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.tfserving.errors import invalid_argument
from serving.tfserving.servable import Array, InputSpec, dtype_name

INSTANCES = "instances"
INPUTS = "inputs"
SIGNATURE_NAME = "signature_name"
_SNIPPET_CHARS = 120

_ACCEPTED_KINDS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}


class RequestFormat(enum.Enum):
    ROW = "instances"
    COLUMNAR = "inputs"


@dataclass(frozen=True)
class PredictBody:
    signature_name: str
    format: RequestFormat
    payload: Any


def _snippet(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "..."


def _json_type(value: Any) -> str:
    for kind, name in (
        (bool, "Bool"),
        (str, "String"),
        (dict, "Object"),
        (list, "Array"),
        (type(None), "Null"),
    ):
        if isinstance(value, kind):
            return name
    return "Number"


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise invalid_argument("JSON Parse error: nesting too deep") from exc
    except UnicodeDecodeError as exc:
        raise invalid_argument(
            f"JSON Parse error: Invalid encoding in string at offset: {exc.start}"
        ) from exc
    except json.JSONDecodeError as exc:
        # TF Serving parses with rapidjson, whose words differ from Python's for a bad first value.
        message = _RAPIDJSON_WORDS.get(exc.msg, exc.msg)
        raise invalid_argument(f"JSON Parse error: {message} at offset: {exc.pos}") from exc


_RAPIDJSON_WORDS = {"Expecting value": "Invalid value."}


def parse_predict_body(body: bytes) -> PredictBody:
    """Parse a predict request body; tensors are converted later, once the signature is known."""
    document = parse_json(body)
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {_snippet(document)} Is not object")
    signature = document.get(SIGNATURE_NAME, "")
    if not isinstance(signature, str):
        raise invalid_argument(
            f"JSON Value: {_snippet(document)} not formatted correctly. "
            f"'{SIGNATURE_NAME}' key must be a string value."
        )
    has_instances, has_inputs = INSTANCES in document, INPUTS in document
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {_snippet(document)} Not formatted correctly expecting only one of "
            f"'{INPUTS}' or '{INSTANCES}' keys to exist "
        )
    if has_instances:
        instances = document[INSTANCES]
        if not isinstance(instances, list):
            raise invalid_argument(f"JSON Value: {_snippet(document)} Expecting '{INSTANCES}' to be a list")
        if not instances:
            raise invalid_argument(f"JSON Value: {_snippet(document)} No values in '{INSTANCES}' array")
        return PredictBody(signature, RequestFormat.ROW, instances)
    if has_inputs:
        return PredictBody(signature, RequestFormat.COLUMNAR, document[INPUTS])
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _is_named_object(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _leaves(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            yield item


def _to_array(value: Any, spec: InputSpec) -> Array:
    """One JSON value as an array of the input's dtype (numbers only; bools only for bool inputs)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError) as exc:
        raise invalid_argument(f"JSON Value: {_snippet(value)} is not a dense tensor: {exc}") from exc
    if array.dtype.kind not in _ACCEPTED_KINDS.get(spec.dtype.kind, ""):
        expected = dtype_name(spec.dtype)
        for leaf in _leaves(value):
            number = isinstance(leaf, int | float) and not isinstance(leaf, bool)
            if not (number or (isinstance(leaf, bool) and spec.dtype.kind == "b")):
                raise invalid_argument(
                    f"JSON Value: {_snippet(leaf)} Type: {_json_type(leaf)} "
                    f"is not of expected type: {expected}"
                )
        raise invalid_argument(f"JSON Value: {_snippet(value)} is not of expected type: {expected}")
    try:
        return array.astype(spec.dtype, copy=False)
    except (OverflowError, ValueError) as exc:
        raise invalid_argument(f"JSON Value: {_snippet(value)} cannot be converted: {exc}") from exc


def _stack(items: list[Array], name: str) -> Array:
    first = items[0].shape
    for index, item in enumerate(items):
        if item.shape != first:
            raise invalid_argument(
                f"Failed to process element: {index} of '{INSTANCES}' list. Error: Invalid argument: "
                f"Expecting shape {list(first)} but got: {list(item.shape)} (input {name})"
            )
    return np.stack(items)


def _from_instances(instances: list[Any], specs: Mapping[str, InputSpec]) -> dict[str, Array]:
    if not _is_named_object(instances[0]):
        if len(specs) > 1:
            raise invalid_argument(
                "instances is a plain list, but expecting list of objects as multiple "
                "input tensors required as per tensorinfo_map"
            )
        (spec,) = specs.values()
        rows: list[Array] = []
        for index, item in enumerate(instances):
            if _is_named_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            rows.append(_to_array(item, spec))
        return {spec.name: _stack(rows, spec.name)}
    columns: dict[str, list[Array]] = {name: [] for name in specs}
    for index, item in enumerate(instances):
        if not _is_named_object(item):
            raise invalid_argument(f"Expecting object but got list at item {index} of input list")
        if set(item) != set(specs):
            raise invalid_argument(
                f"Failed to process element: {index} of '{INSTANCES}' list. JSON object: {_snippet(item)} "
                f"keys must be equal to: {','.join(sorted(specs))}"
            )
        for name, spec in specs.items():
            columns[name].append(_to_array(item[name], spec))
    return {name: _stack(rows, name) for name, rows in columns.items()}


def _from_inputs(inputs: Any, specs: Mapping[str, InputSpec]) -> dict[str, Array]:
    if not _is_named_object(inputs):
        if len(specs) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
        (spec,) = specs.values()
        return {spec.name: _to_array(inputs, spec)}
    tensors: dict[str, Array] = {}
    for name, spec in specs.items():
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in '{INPUTS}' object.")
        tensors[name] = _to_array(inputs[name], spec)
    return tensors


def tensors_from_body(body: PredictBody, specs: Mapping[str, InputSpec]) -> dict[str, Array]:
    """The request's input tensors, one batched array per named input of the signature."""
    if not specs:
        raise invalid_argument(f"Failed to get input map for signature: {body.signature_name or 'DEFAULT'}")
    if body.format is RequestFormat.ROW:
        return _from_instances(body.payload, specs)
    return _from_inputs(body.payload, specs)


def _plain(array: Array) -> Any:
    """Nested lists; float32 values keep their shortest decimal form, as TF Serving writes them."""
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def render_outputs(outputs: Mapping[str, Array], request_format: RequestFormat) -> dict[str, Any]:
    """``{"predictions": ...}`` for row requests, ``{"outputs": ...}`` for columnar ones."""
    if request_format is RequestFormat.COLUMNAR:
        if len(outputs) == 1:
            return {"outputs": _plain(next(iter(outputs.values())))}
        return {"outputs": {name: _plain(value) for name, value in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": _plain(next(iter(outputs.values())))}
    batches = {value.shape[0] if value.ndim else -1 for value in outputs.values()}
    if len(batches) != 1 or -1 in batches:
        raise invalid_argument(
            "Output tensors differ in batch size: use the columnar ('inputs') request format"
        )
    (batch,) = batches
    plain = {name: _plain(value) for name, value in outputs.items()}
    return {"predictions": [{name: rows[row] for name, rows in plain.items()} for row in range(batch)]}


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=True).encode()
