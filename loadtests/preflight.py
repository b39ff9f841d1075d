"""One real request per target before the run: a target that cannot answer correctly is skipped.

The request and the checks are the ones the Locust users make (same bytes, same
:mod:`loadtests.checks`), sent with the standard library and grpcio, so that a missing server,
a wrong address, a rejected token or a model that answers the wrong digit is reported as
*skipped: <reason>* instead of thousands of failures. It also learns which TF Serving answers:
the project's stand-in names itself in an ``X-Served-By`` header on every REST answer.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from loadtests.checks import check_gateway_headers, check_rest_prediction, check_status
from loadtests.grpc_wire import codec_for
from loadtests.payloads import Digit
from loadtests.targets import Target, address
from model_store import MODEL_NAME
from serving.endpoints import REST_PATHS, Endpoints
from serving.nullserver import NULL_GRPC_METHOD, NULL_REST_ANSWER

__all__ = ["Probe", "bearer_header", "probe"]


@dataclass(frozen=True)
class Probe:
    target: str
    ok: bool
    reason: str = ""
    served_by: str = ""
    """The ``X-Served-By`` header (the TF Serving stand-in sends one; official TF Serving does not)."""


def bearer_header(endpoints: Endpoints, static_token: str) -> dict[str, str]:
    """TorchServe's ``Authorization`` header from the key file (or a static token); {} without auth."""
    from gateway.backends.torchserve_keys import TokenError, TokenSource

    key_file = Path(endpoints.torchserve_key_file) if endpoints.torchserve_key_file else None
    try:
        return TokenSource(key_file, static_token=static_token).header()
    except TokenError:
        return {}


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # nosec B310  # the operator's endpoint settings, not request data
            return answer.status, answer.read(), dict(answer.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers.items())


def _rest(
    target: Target, address: str, digit: Digit, endpoints: Endpoints, token: str, timeout: float
) -> Probe:
    headers = {"Content-Type": "application/json"}
    path = REST_PATHS[target.api].format(model=MODEL_NAME)
    request_body = digit.body_for(target.api)
    if target.api == "torchserve":
        headers.update(bearer_header(endpoints, token))
    if target.via_gateway and target.backend:
        headers["X-Gateway-Backend"] = target.backend
    status, body, answer_headers = _post(address.rstrip("/") + path, request_body, headers, timeout)
    if target.path == "calibration":
        problem = check_status(status, body) or (
            None if body == NULL_REST_ANSWER else "unexpected null answer"
        )
    else:
        problem = check_status(status, body) or check_rest_prediction(body, digit.label, target.api)
    if problem is None and target.via_gateway and target.backend:
        problem = check_gateway_headers(answer_headers, target.backend)
    lowered = {key.lower(): value for key, value in answer_headers.items()}
    return Probe(target.name, problem is None, problem or "", lowered.get("x-served-by", ""))


def _grpc(
    target: Target, address: str, digit: Digit, endpoints: Endpoints, token: str, timeout: float
) -> Probe:
    import grpc

    codec = codec_for(target.api, MODEL_NAME)
    method = NULL_GRPC_METHOD if target.path == "calibration" else codec.method
    metadata = []
    if target.api == "torchserve":
        bearer = bearer_header(endpoints, token).get("Authorization")
        metadata = [("authorization", bearer)] if bearer else []
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method, _registered_method=False)
        try:
            answer = call(codec.request(digit), timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            return Probe(target.name, False, f"gRPC {getattr(code, 'name', code)}: {str(details)[:160]}")
    problem = None if target.path == "calibration" else codec.check(answer, digit.label)
    return Probe(target.name, problem is None, problem or "")


def probe(
    target: Target, endpoints: Endpoints, digit: Digit, *, token: str = "", timeout: float = 10.0
) -> Probe:
    """Send ``digit`` once to ``target``; ``ok`` only for a correct answer."""
    where = address(endpoints, target)
    if not where:
        return Probe(target.name, False, "no address configured")
    try:
        if target.protocol == "grpc":
            return _grpc(target, where, digit, endpoints, token, timeout)
        return _rest(target, where, digit, endpoints, token, timeout)
    except OSError as exc:
        reason = getattr(exc, "reason", None) or exc
        return Probe(target.name, False, f"unreachable at {where}: {reason}")
