"""TF ``TensorProto`` (TF Serving's gRPC ``Predict``) <-> arrays, without TensorFlow: the input is read
as a V2 tensor of the same shape (:func:`gateway.codecs.v2_json.image_tensor` validates both alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.codecs.json_body import Limits
from gateway.codecs.v2_json import INPUT, image_tensor
from gateway.errors import InvalidInput
from gateway.tfserving_proto import DT_FLOAT

__all__ = ["fill_tensor_proto", "from_tensor_proto"]


def from_tensor_proto(proto: Any, limits: Limits) -> np.ndarray:
    """A request's input tensor -> validated float32 ``[N, *item]``."""
    if proto.dtype != DT_FLOAT:
        raise InvalidInput(f"input {INPUT!r} must be DT_FLOAT (float32)")
    shape = [int(dim.size) for dim in proto.tensor_shape.dim]
    described = {"name": INPUT, "datatype": "FP32", "shape": shape}
    if proto.tensor_content:
        return image_tensor(described, proto.tensor_content, limits)
    return image_tensor({**described, "data": list(proto.float_val)}, None, limits)


def fill_tensor_proto(proto: Any, array: np.ndarray) -> None:
    """Write ``array`` into ``proto`` as DT_FLOAT with its shape (raw little-endian content)."""
    proto.dtype = DT_FLOAT
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    proto.tensor_content = array.astype("<f4").tobytes()
