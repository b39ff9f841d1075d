"""The model server's operations on protos, shared by the REST and gRPC front ends.

Each function takes the request's ModelSpec fields and returns the response proto TF Serving
returns (GetModelStatusResponse, GetModelMetadataResponse) or the outputs of a predict call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2

from serving.tfserving.errors import invalid_argument
from serving.tfserving.repository import ModelRepository
from serving.tfserving.servable import DEFAULT_SIGNATURE, Array, LoadedVersion

SIGNATURE_DEF_FIELD = "signature_def"


@dataclass(frozen=True)
class Target:
    """Which servable a request names: a model, and at most one of version or label."""

    model_name: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def from_model_spec(cls, spec: model_pb2.ModelSpec) -> Target:
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return cls(spec.name, version=spec.version.value)
        if choice == "version_label":
            return cls(spec.name, label=spec.version_label)
        return cls(spec.name)


@dataclass(frozen=True)
class Prediction:
    servable: LoadedVersion
    signature_name: str
    outputs: dict[str, Array]

    def model_spec(self, model_name: str) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=model_name, signature_name=self.signature_name)
        spec.version.value = self.servable.version
        return spec


def model_status(repository: ModelRepository, target: Target) -> get_model_status_pb2.GetModelStatusResponse:
    """GetModelStatus. As in TF Serving, a version label does not narrow the answer: all versions."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in sorted(repository.version_states(target.model_name, target.version).items()):
        row = response.model_version_status.add()
        row.version = version
        row.state = state.state
        row.status.error_code = int(state.error_code)
        row.status.error_message = state.error_message
    return response


def model_metadata(
    repository: ModelRepository, target: Target, fields: Sequence[str] = (SIGNATURE_DEF_FIELD,)
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata: the servable's signature defs packed in an Any, as TF Serving sends them."""
    if not fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")
    servable = repository.resolve(target.model_name, target.version, target.label)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = target.model_name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_defs)
    return response


def predict(
    repository: ModelRepository,
    target: Target,
    signature_name: str,
    inputs: Mapping[str, Array],
    output_filter: Sequence[str] = (),
    servable: LoadedVersion | None = None,
) -> Prediction:
    """Run a signature; pass ``servable`` when the caller already resolved it (REST does, to parse JSON)."""
    chosen = servable or repository.resolve(target.model_name, target.version, target.label)
    outputs = chosen.predict(signature_name, inputs, output_filter)
    return Prediction(chosen, signature_name or DEFAULT_SIGNATURE, outputs)
