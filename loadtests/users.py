"""Locust User classes, one per target, and the glue that records every request at full resolution.

Imported only inside a Locust process (``import locust`` patches the standard library with gevent, so
this module must never be imported by the runner, the tests or anything that loads TensorFlow).

* HTTP targets use FastHttpUser with one keep-alive connection per user; gRPC targets use one channel
  per user, run on gevent (``grpc.experimental.gevent``) and fire Locust's request event themselves.
* Every request sends one real MNIST test digit (``loadtests.payloads``) and every answer is checked:
  status, shape, and the predicted digit against the label (a wrong digit is a failure).
  Through the gateway, the answer must also come from the backend the request chose.
* Addresses come from options (``--tfserving-rest-url`` ... defined below; the web UI lists them under
  custom parameters) or ``LOADTEST_*`` environment variables; defaults match ``make serve`` and
  ``make gateway``.
"""

from __future__ import annotations

import itertools
import random
import time
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

# Inside Locust, locust (and its gevent patching) is imported before this module; grpc then runs on gevent.
import grpc
import locust
from grpc.experimental import gevent as grpc_gevent
from locust import FastHttpUser, User, events, runners, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import open_loop
from loadtests.backends import BACKENDS, StackBackend
from loadtests.checks import check_gateway_headers, check_json_predictions, check_status, check_v2_outputs
from loadtests.grpc_wire import GrpcCodec, codec_for
from loadtests.independent import BLOCK, DISCARD
from loadtests.payloads import Payloads, load_payloads, payloads_from_store
from loadtests.plan import NOT_COUNTED
from loadtests.recorder import SampleRecorder, failure_reason
from loadtests.targets import ADDRESS_OPTIONS
from serving.endpoints import REST_PATHS
from serving.nullserver import NULL_GRPC_METHOD, NULL_REST_ANSWER

__all__ = ["RECORDER", "USER_CLASSES", "set_pace"]

grpc_gevent.init_gevent()
# Workers ship their samples with each stats report; every second keeps the master's counts current.
runners.WORKER_REPORT_INTERVAL = 1.0
# Each process measures its own CPU this often (a worker reports it to the master in its heartbeats,
# which is how the CPU of workers on other machines reaches the report); Locust's default is 10 s.
runners.CPU_MONITOR_INTERVAL = 1.0

RECORDER = SampleRecorder()
"""This process's samples (standalone or master: everything; worker: queued for the master)."""

PACE_MESSAGE = "loadtests_pace"
PAYLOAD_MESSAGE = "loadtests_payloads"
_pace: dict[str, float | None] = {"per_user": None}


def _defaults() -> dict[str, str]:
    from serving.endpoints import default_endpoints

    return default_endpoints().to_dict()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    defaults = _defaults()
    group = parser.add_argument_group("MNIST targets (loadtests)")
    for name, what in ADDRESS_OPTIONS:
        key = name.replace("-", "_")
        group.add_argument(
            f"--{name}",
            default=defaults[key],
            env_var=f"LOADTEST_{key.upper()}",
            help=f"{what} (%(default)s)",
        )
    group.add_argument("--null-url", default="", env_var="LOADTEST_NULL_URL", help="null REST endpoint")
    group.add_argument(
        "--null-grpc-target", default="", env_var="LOADTEST_NULL_GRPC_TARGET", help="null gRPC"
    )
    group.add_argument(
        "--torchserve-token", default="", env_var="LOADTEST_TORCHSERVE_TOKEN", help="static key"
    )
    group.add_argument("--model-name", default="mnist", env_var="LOADTEST_MODEL_NAME", help="model (mnist)")
    group.add_argument(
        "--payload-file",
        default="",
        env_var="LOADTEST_PAYLOAD_FILE",
        help="digits written by the runner (default: choose them from the model store's latest version)",
    )
    group.add_argument("--request-timeout", type=float, default=10.0, env_var="LOADTEST_REQUEST_TIMEOUT")
    group.add_argument(
        "--interleaved-targets",
        default="",
        env_var="LOADTEST_INTERLEAVED_TARGETS",
        help="target=UserClass,... that InterleavedRestUser takes in turn (written by the runner)",
    )
    group.add_argument(
        "--samples-file",
        default="",
        env_var="LOADTEST_SAMPLES_FILE",
        help="write every request's raw timing here at the end (JSON)",
    )


def _option(environment: Environment, name: str) -> Any:
    return getattr(environment.parsed_options, name, None) if environment.parsed_options else None


_shipped: dict[str, Payloads] = {}
"""Payloads the master sent to this worker (a remote worker does not have the master's file)."""


def _payloads(path: str) -> Payloads:
    return _shipped[path] if path in _shipped else _payloads_from(path)


@cache
def _payloads_from(path: str) -> Payloads:
    if path:
        return load_payloads(Path(path))
    from exporters.mnist import load_mnist
    from model_store import MODEL_NAME, ModelStore, default_root

    data = load_mnist()
    return payloads_from_store(ModelStore(default_root(), MODEL_NAME), data.test_images, data.test_labels)


@cache
def _encoded(path: str, codec: GrpcCodec | None, v2: bool = False) -> tuple[tuple[int, bytes], ...]:
    """(label, request bytes) per digit, encoded once per process (``v2``: Open Inference Protocol JSON)."""
    digits = _payloads(path).digits
    if codec is not None:
        return tuple((d.label, codec.request(d)) for d in digits)
    return tuple((d.label, d.v2_body() if v2 else d.rest_body()) for d in digits)


# -- pacing (fixed-rate phases) --------------------------------------------------------------


def set_pace(per_user: float | None) -> None:
    """Pace each user to ``per_user`` requests/s (None: no think time, a closed loop)."""
    _pace["per_user"] = per_user


def paced_wait(user: User) -> float:
    """Seconds until this user's next scheduled request; 0 in closed-loop phases.

    Requests are scheduled at fixed intervals, not after each answer, so a slow answer does not
    push the schedule back; a user still cannot send while it waits, so past saturation this is a
    closed loop again (coordinated omission) and the report says so.
    """
    rate = _pace["per_user"]
    now = time.monotonic()
    if not rate:
        user.__dict__.pop("_due", None)
        return 0.0
    interval = 1.0 / rate
    due = user.__dict__.get("_due")
    due = now + random.uniform(0, interval) if due is None else max(due + interval, now)
    user.__dict__["_due"] = due
    return max(0.0, due - now)


# -- recording -----------------------------------------------------------------------------------


@events.init.add_listener
def _wire(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # Locust calls a message listener as listener(environment=..., msg=...).
        runner.register_message(PACE_MESSAGE, lambda msg, **_: set_pace(msg.data["per_user"]))
        runner.register_message(PAYLOAD_MESSAGE, _receive_payloads)
    if isinstance(runner, MasterRunner):
        environment.events.worker_connect.add_listener(
            lambda client_id, **_: _send_payloads(runner, client_id)
        )
        return
    keep = not isinstance(runner, WorkerRunner)

    def on_request(
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        start_time: float | None = None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        headers = getattr(response, "headers", None)
        timing = headers.get("Server-Timing") if headers else None
        started = start_time if start_time is not None else time.time() - response_time / 1000.0
        lag = open_loop.lag_ms(context)
        RECORDER.record(
            name, started, float(response_time), failure_reason(exception), timing, keep=keep, lag_ms=lag
        )

    environment.events.request.add_listener(on_request)


def _send_payloads(runner: MasterRunner, client_id: str) -> None:
    path = _option(runner.environment, "payload_file")
    if path:
        runner.send_message(PAYLOAD_MESSAGE, {"path": path, "text": Path(path).read_text()}, client_id)


def _receive_payloads(msg: Any, **_: Any) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as copy:
        copy.write(msg.data["text"])
    try:
        _shipped[msg.data["path"]] = load_payloads(Path(copy.name))
    finally:
        Path(copy.name).unlink()


@events.report_to_master.add_listener
def _ship(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["loadtests_samples"] = RECORDER.take_batch()


@events.worker_report.add_listener
def _receive(client_id: str, data: dict[str, Any], **_: Any) -> None:
    RECORDER.add_batch(data.get("loadtests_samples") or {}, client_id)


@events.quitting.add_listener
def _save(environment: Environment, **_: Any) -> None:
    path = _option(environment, "samples_file")
    if path and not isinstance(environment.runner, WorkerRunner):
        RECORDER.write(Path(path))


_Class = TypeVar("_Class", bound=type)
_DIRECT = {f"{entry.stem}User": entry for entry in BACKENDS if entry.direct}


def _direct(cls: _Class) -> _Class:
    """A direct user's target, address option, API and path, from the registry entry ``<stem>User``."""
    entry = _DIRECT[cls.__name__]
    user: Any = cls
    user.target_name, user.url_option, user.api = entry.name, entry.endpoint, entry.api
    if entry.protocol == "rest":
        user.path = REST_PATHS[entry.api]
    return cls


# -- HTTP users ----------------------------------------------------------------------------------


class _RestUser(FastHttpUser):
    """POST one digit as ``{"instances": [...]}``; check status, shape and digit."""

    abstract = True
    target_name: ClassVar[str]
    url_option: ClassVar[str]
    api: ClassVar[str] = "tfserving"
    path: ClassVar[str] = REST_PATHS["tfserving"]
    digits_field: ClassVar[bool] = False
    """TorchServe's handler also answers ``"digits": [d]``."""
    wait_time = open_loop.wait_or(paced_wait)
    max_retries = 0

    def context(self) -> dict[str, Any]:
        return open_loop.context(self)

    def __init__(self, environment: Environment) -> None:
        # Locust's --host (or the web UI's host field) wins, as usual; else this target's own option.
        url = environment.host or _option(environment, self.url_option)
        if not url:
            raise ValueError(f"{type(self).__name__}: no address (--{self.url_option.replace('_', '-')})")
        self.host = str(url).rstrip("/")
        timeout = float(_option(environment, "request_timeout") or 10.0)
        self.network_timeout = self.connection_timeout = timeout
        super().__init__(environment)
        model = _option(environment, "model_name") or "mnist"
        self._url = self.path.format(model=model)
        self._bodies = _encoded(str(_option(environment, "payload_file") or ""), None)
        self._cursor = itertools.cycle(random.sample(range(len(self._bodies)), len(self._bodies)))

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json"}

    def check(self, response: Any, content: bytes, label: int) -> str | None:
        """Why this answer is wrong, or None (status, shape, digit; subclasses add their own checks)."""
        if not response.status_code:  # no HTTP answer at all (refused, reset, timed out)
            return failure_reason(getattr(response, "error", None) or "no answer")
        return check_status(response.status_code, content) or check_json_predictions(
            content, label, digits_field=self.digits_field
        )

    @task
    def predict(self, name: str | None = None) -> None:
        """One digit; recorded under ``name`` (default: the target's own)."""
        label, body = self._bodies[next(self._cursor)]
        with self.client.post(
            self._url,
            data=body,  # type: ignore[arg-type]  # geventhttpclient sends bytes as they are
            headers=self.headers(),
            name=name or self.target_name,
            catch_response=True,
        ) as response:
            problem = self.check(response, response.content or b"", label)
            if problem:
                response.failure(problem)
            else:
                response.success()


@_direct
class TFServingRestUser(_RestUser):
    """TF Serving REST (or the project's stand-in): ``POST /v1/models/mnist:predict``."""


@_direct
class TorchServeRestUser(_RestUser):
    """TorchServe REST: ``POST /predictions/mnist`` with the inference key as a bearer token."""

    digits_field = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._tokens = _token_source(environment)

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self._tokens.header()}


@_direct
class V2RestUser(_RestUser):
    """Open Inference Protocol (V2) REST, Triton here: ``POST /v2/models/mnist/infer``, JSON tensors."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._bodies = _encoded(str(_option(environment, "payload_file") or ""), None, True)

    def check(self, response: Any, content: bytes, label: int) -> str | None:
        if not response.status_code:
            return failure_reason(getattr(response, "error", None) or "no answer")
        return check_status(response.status_code, content) or check_v2_outputs(content, label)


class _GatewayUser(_RestUser):
    """The gateway's TF-Serving-style endpoint, routed explicitly with ``X-Gateway-Backend``."""

    abstract = True
    url_option = "gateway_url"
    backend: ClassVar[str]

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Gateway-Backend": self.backend}

    def check(self, response: Any, content: bytes, label: int) -> str | None:
        return super().check(response, content, label) or check_gateway_headers(
            response.headers or {}, self.backend
        )


def _gateway_user(entry: StackBackend) -> type[_GatewayUser]:
    attrs = {"target_name": f"gateway/{entry.name}", "backend": entry.name, "__module__": __name__}
    return type(f"Gateway{entry.stem}User", (_GatewayUser,), attrs)


class NullRestUser(_RestUser):
    """Calibration: the same request to an endpoint that does no work (``python -m serving.nullserver``)."""

    target_name = "null-rest"
    url_option = "null_url"

    def check(self, response: Any, content: bytes, label: int) -> str | None:
        if not response.status_code:
            return failure_reason(getattr(response, "error", None) or "no answer")
        return check_status(response.status_code, content) or (
            None if content == NULL_REST_ANSWER else "unexpected null answer"
        )


@cache
def _token_source_for(key_file: str, token: str) -> Any:
    from gateway.backends.torchserve_keys import TokenSource

    return TokenSource(Path(key_file) if key_file else None, static_token=token)


def _token_source(environment: Environment) -> Any:
    return _token_source_for(
        str(_option(environment, "torchserve_key_file") or ""),
        str(_option(environment, "torchserve_token") or ""),
    )


class InterleavedRestUser(User):
    """Every REST target of the round in turn, in blocks: ``BLOCK`` requests to one target, then the
    next, the targets in a new random order every cycle (as the independent client takes them). Each
    target is called through its own User class (its address, body, headers and answer check) on a
    connection of its own; the first ``DISCARD`` answers of a block are recorded under the target's
    name plus :data:`~loadtests.plan.NOT_COUNTED` (the server's caches warm again after the others ran),
    the rest under the target's name, so a step's figures per target come out of one window."""

    wait_time = open_loop.wait_or(paced_wait)

    def on_start(self) -> None:
        pairs = str(_option(self.environment, "interleaved_targets") or "")
        chosen = [item.split("=", 1) for item in pairs.split(",") if "=" in item]
        if not chosen:
            raise ValueError("InterleavedRestUser: no --interleaved-targets (written by the runner)")
        self._legs: dict[str, Any] = {name: USER_CLASSES[user](self.environment) for name, user in chosen}
        self._order: list[str] = []
        self._left = 0
        self._name = ""

    @task
    def predict(self) -> None:
        if self._left == 0:  # the next target's block
            if not self._order:
                self._order = random.sample(list(self._legs), len(self._legs))
            self._name, self._left = self._order.pop(), BLOCK
        counted = self._left <= BLOCK - DISCARD
        self._left -= 1
        self._legs[self._name].predict(self._name if counted else self._name + NOT_COUNTED)


# -- gRPC users ----------------------------------------------------------------------------------


class GrpcFailure(Exception):
    """A gRPC call that failed or answered wrongly (the message is the reason)."""


class _GrpcUser(User):
    """One channel per user; the call's duration is timed with perf_counter and reported as an event."""

    abstract = True
    target_name: ClassVar[str]
    url_option: ClassVar[str]
    api: ClassVar[str] = "tfserving"
    """The server API whose requests it sends (``loadtests.grpc_wire.codec_for``)."""
    method: ClassVar[str | None] = None
    """gRPC method path (default: the codec's)."""
    check_answers: ClassVar[bool] = True
    wait_time = open_loop.wait_or(paced_wait)

    def context(self) -> dict[str, Any]:
        return open_loop.context(self)

    def codec(self, model: str) -> GrpcCodec:
        return codec_for(self.api, model)

    def metadata(self) -> list[tuple[str, str]]:
        return []

    def on_start(self) -> None:
        target = _option(self.environment, self.url_option)
        if not target:
            raise ValueError(f"{type(self).__name__}: no address (--{self.url_option.replace('_', '-')})")
        self._codec = self.codec(_option(self.environment, "model_name") or "mnist")
        self._method = self.method or self._codec.method
        self._timeout = float(_option(self.environment, "request_timeout") or 10.0)
        self._channel = grpc.insecure_channel(str(target))
        self._call = self._channel.unary_unary(self._method, _registered_method=False)
        self._requests = _encoded(str(_option(self.environment, "payload_file") or ""), self._codec)
        self._cursor = itertools.cycle(random.sample(range(len(self._requests)), len(self._requests)))

    def on_stop(self) -> None:
        self._channel.close()

    @task
    def predict(self) -> None:
        label, request = self._requests[next(self._cursor)]
        answer = b""
        started = time.time()
        clock = time.perf_counter()
        try:
            answer = self._call(request, timeout=self._timeout, metadata=self.metadata())
            elapsed_ms = (time.perf_counter() - clock) * 1000.0
            problem = self._codec.check(answer, label) if self.check_answers else None
        except grpc.RpcError as exc:
            elapsed_ms = (time.perf_counter() - clock) * 1000.0
            code = exc.code() if hasattr(exc, "code") else None
            details = exc.details() if hasattr(exc, "details") else str(exc)
            problem = f"gRPC {getattr(code, 'name', code)}: {str(details)[:100]}"
        self.environment.events.request.fire(
            request_type="gRPC",
            name=self.target_name,
            response_time=elapsed_ms,
            response_length=len(answer),
            response=None,
            context=self.context(),
            exception=GrpcFailure(problem) if problem else None,
            start_time=started,
            url=self._method,
        )


@_direct
class TFServingGrpcUser(_GrpcUser):
    """TF Serving gRPC ``PredictionService/Predict`` with a float32 tensor (no TensorFlow import)."""


@_direct
class TorchServeGrpcUser(_GrpcUser):
    """TorchServe gRPC ``InferenceAPIsService/Predictions``, the JSON body in ``input["data"]``."""

    def metadata(self) -> list[tuple[str, str]]:
        token = _token_source(self.environment).token()
        return [("authorization", f"Bearer {token}")] if token else []


@_direct
class V2GrpcUser(_GrpcUser):
    """Open Inference Protocol (V2) gRPC, Triton here: ``GRPCInferenceService/ModelInfer``, raw tensors."""


class NullGrpcUser(_GrpcUser):
    """Calibration: TF Serving's request bytes to a gRPC method that answers at once."""

    target_name = "null-grpc"
    url_option = "null_grpc_target"
    method = NULL_GRPC_METHOD
    check_answers = False


_USERS: tuple[type[User], ...] = (
    NullRestUser,
    NullGrpcUser,
    TFServingRestUser,
    TorchServeRestUser,
    V2RestUser,
    TFServingGrpcUser,
    TorchServeGrpcUser,
    V2GrpcUser,
    InterleavedRestUser,
    *map(_gateway_user, BACKENDS),
)
USER_CLASSES: dict[str, type[User]] = {user.__name__: user for user in _USERS}
"""Every target's User class by name (``loadtests.targets.Target.user_class``)."""

_ = locust  # imported first for its gevent patching
