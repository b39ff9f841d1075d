"""One loaded SavedModel version: its signatures, and predict with TF Serving's input checks.

Inputs are checked against the signature before TensorFlow sees them (names, dtype, shape), because a
Keras graph can silently accept some wrong shapes (``[N, 784]`` flattens to the same thing as
``[N, 28, 28]``); TF Serving's error wording is kept where it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis.get_model_metadata_pb2 import SignatureDefMap

from serving.tfserving.errors import Code, ServingError, invalid_argument

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class InputSpec:
    """What a signature accepts for one named input; ``None`` in ``shape`` is any size."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None

    def shape_text(self) -> str:
        if self.shape is None:
            return "<unknown rank>"
        return "[" + ",".join("?" if dim is None else str(dim) for dim in self.shape) + "]"

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )


def dtype_name(dtype: np.dtype[Any] | type) -> str:
    """TensorFlow's name for a dtype as TF Serving prints it (``float``, ``double``, ``int32``...)."""
    enum = tf.as_dtype(dtype).as_datatype_enum
    return str(types_pb2.DataType.Name(enum)).removeprefix("DT_").lower()


def _input_specs(function: Any) -> dict[str, InputSpec]:
    specs: dict[str, InputSpec] = {}
    for name, spec in function.structured_input_signature[1].items():
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        specs[name] = InputSpec(name, np.dtype(spec.dtype.as_numpy_dtype), shape)
    return specs


def read_signature_defs(version_dir: Path) -> SignatureDefMap:
    """The ``serve`` meta graph's signature defs, read from ``saved_model.pb`` as TF Serving reports them."""
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    signature_map = SignatureDefMap()
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            for key, signature in meta_graph.signature_def.items():
                signature_map.signature_def[key].CopyFrom(signature)
            break
    return signature_map


class LoadedVersion:
    """A servable: one version directory loaded with ``tf.saved_model.load``; thread-safe."""

    def __init__(self, version: int, path: Path, loaded: Any, signature_defs: SignatureDefMap) -> None:
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        self._loaded = loaded  # keeps the functions' variables alive
        self._functions: dict[str, Any] = dict(loaded.signatures)
        self._inputs = {name: _input_specs(fn) for name, fn in self._functions.items()}

    def signature_inputs(self, signature_name: str) -> dict[str, InputSpec]:
        """Inputs of a signature, failing as TF Serving's REST layer does when it is unknown."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self._inputs:
            raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
        return self._inputs[name]

    def predict(
        self, signature_name: str, inputs: Mapping[str, Array], output_filter: Sequence[str] = ()
    ) -> dict[str, Array]:
        name = signature_name or DEFAULT_SIGNATURE
        function = self._functions.get(name)
        if function is None:
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
        _check_inputs(self._inputs[name], inputs)
        outputs_wanted = _check_output_filter(list(function.structured_outputs), output_filter)
        try:
            result = function(**{key: tf.constant(value) for key, value in inputs.items()})
        except tf.errors.OpError as exc:
            raise ServingError(Code(exc.error_code), exc.message) from exc
        except (TypeError, ValueError) as exc:
            raise invalid_argument(str(exc)) from exc
        return {key: result[key].numpy() for key in outputs_wanted}


def _check_inputs(specs: Mapping[str, InputSpec], inputs: Mapping[str, Array]) -> None:
    sent, wanted = set(inputs), set(specs)
    if len(sent) != len(wanted):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
            f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    for position, (name, value) in enumerate(inputs.items()):
        spec = specs.get(name)
        if spec is None:
            raise invalid_argument(
                f"input tensor alias not found in signature: {name}. "
                f"Inputs expected to be in the set {{{','.join(sorted(wanted))}}}."
            )
        if value.dtype != spec.dtype:
            raise invalid_argument(
                f"Expects arg[{position}] to be {dtype_name(spec.dtype)} "
                f"but {dtype_name(value.dtype)} is provided"
            )
        if not spec.accepts_shape(value.shape):
            got = "[" + ",".join(str(dim) for dim in value.shape) + "]"
            raise invalid_argument(f"input {name}: shape {got} is not compatible with {spec.shape_text()}")


def _check_output_filter(available: list[str], output_filter: Sequence[str]) -> list[str]:
    if not output_filter:
        return available
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in available:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} "
                f"Outputs expected to be in the set {{{','.join(sorted(available))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def load_version(version: int, path: Path) -> LoadedVersion:
    """Load a SavedModel version directory (raises whatever TensorFlow raises for a broken one)."""
    loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    return LoadedVersion(version, path, loaded, read_signature_defs(path))
