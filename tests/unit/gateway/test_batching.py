"""The micro-batcher on a fake backend call (no sockets): merging, order, isolation, deadlines, drain."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.app import create_app
from gateway.backends import Prediction
from gateway.batching import MicroBatcher
from gateway.errors import DeadlineExceeded, GatewayError, Unavailable
from gateway.metrics import Metrics
from gateway.routing import BatchingConfig, RoutingError, RoutingTable
from gateway.settings import Settings
from tests.unit.gateway.conftest import FakeBackend

WAIT_S = 5.0


def image(tag: float, count: int = 1) -> np.ndarray:
    """Images whose every pixel is ``tag``: the fake backend echoes it, so answers can be traced."""
    return np.full((count, 28, 28), tag, dtype=np.float32)


class GatedBackend:
    """Records each call's images; the first call blocks until ``release`` (so others must queue)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[np.ndarray] = []
        self.gate = threading.Event()
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, images: np.ndarray, timeout: float) -> Prediction:
        with self._lock:
            self.calls.append(images.copy())
            first = len(self.calls) == 1
        if first:
            assert self.gate.wait(WAIT_S), "test never released the first call"
        if self.fail is not None:
            raise self.fail
        return Prediction(np.repeat(images[:, :1, 0], 10, axis=1), "7", 0.001)

    def release(self) -> None:
        self.gate.set()


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []
        self.delays: list[float] = []

    def batch(self, model: str, backend: str, images: int, requests: int) -> None:
        self.batches.append((images, requests))

    def queue_delay(self, model: str, backend: str, seconds: float) -> None:
        self.delays.append(seconds)

    def lone(self, model: str, backend: str, images: int) -> None:
        self.batch(model, backend, images, 1)
        self.queue_delay(model, backend, 0.0)


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.001)


class Client(threading.Thread):
    def __init__(self, batcher: MicroBatcher, images: np.ndarray, timeout: float = WAIT_S) -> None:
        super().__init__(daemon=True)
        self.batcher, self.images, self.timeout = batcher, images, timeout
        self.result: Prediction | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.result = self.batcher.run(self.images, self.timeout)
        except Exception as exc:
            self.error = exc

    def finish(self) -> Client:
        self.join(WAIT_S)
        assert not self.is_alive(), "a request never came back"
        return self


def batcher_for(
    backend: GatedBackend, max_batch: int = 32, max_delay_ms: float = 0.0, observer: Recorder | None = None
) -> MicroBatcher:
    config = BatchingConfig(enabled=True, max_batch=max_batch, max_delay_ms=max_delay_ms)
    return MicroBatcher("mnist", "fake", config, backend, observer)


def start_blocked(batcher: MicroBatcher, backend: GatedBackend) -> Client:
    """A first request whose backend call is in flight (and stays there until released)."""
    first = Client(batcher, image(0.0))
    first.start()
    until(lambda: len(backend.calls) == 1, "the first call")
    return first


def queue(batcher: MicroBatcher, tags: list[float], timeout: float = WAIT_S) -> list[Client]:
    clients = []
    before = batcher.pending()
    for tag in tags:  # one at a time, so the queue order is the list order
        client = Client(batcher, image(tag), timeout)
        client.start()
        clients.append(client)
        expected = before + len(clients)
        until(lambda n=expected: batcher.pending() == n, "the request to queue")
    return clients


def test_a_lone_request_goes_out_at_once_and_alone() -> None:
    backend = GatedBackend()
    backend.release()
    observer = Recorder()
    batcher = batcher_for(backend, max_delay_ms=4000.0, observer=observer)
    started = time.monotonic()
    answer = batcher.run(image(0.5), WAIT_S)
    assert time.monotonic() - started < 2.0  # far from the 4 s fill delay: a lone request never waits
    assert [len(c) for c in backend.calls] == [1]
    assert answer.probabilities.shape == (1, 10) and answer.probabilities[0, 0] == pytest.approx(0.5)
    assert answer.version == "7"
    assert observer.batches == [(1, 1)]


def test_the_metrics_count_a_lone_request_as_a_batch_of_one_that_did_not_wait() -> None:
    backend = GatedBackend()
    backend.release()
    metrics = Metrics()
    batcher = MicroBatcher("mnist", "fake", BatchingConfig(enabled=True), backend, metrics)
    batcher.run(image(0.5, count=2), WAIT_S)
    batcher.run(image(0.7), WAIT_S)
    labels = {"model": "mnist", "backend": "fake"}
    sample = metrics.registry.get_sample_value
    assert sample("gateway_batch_size_count", labels) == 2
    assert sample("gateway_batch_size_sum", labels) == 3  # images
    assert sample("gateway_batch_requests_sum", labels) == 2  # one request each
    assert sample("gateway_batch_queue_delay_seconds_count", labels) == 2
    assert sample("gateway_batch_queue_delay_seconds_sum", labels) == 0.0


def test_a_lone_request_that_fails_hands_the_lead_on_and_hears_a_gateway_error() -> None:
    broken = GatedBackend(fail=ValueError("a bug in a backend"))
    broken.release()
    batcher = batcher_for(broken)
    with pytest.raises(GatewayError, match="internal error"):  # not the bare ValueError
        batcher.run(image(0.1), WAIT_S)
    with pytest.raises(DeadlineExceeded):  # a lone request whose deadline already passed is not sent
        batcher.run(image(0.2), 0.0)
    assert len(broken.calls) == 1
    broken.fail = None  # the lead was given back each time: the next request goes out alone
    assert batcher.run(image(0.3), WAIT_S).probabilities[0, 0] == pytest.approx(0.3)
    assert batcher.pending() == 0


def test_requests_arriving_during_a_call_share_the_next_one_and_get_their_own_answers_in_order() -> None:
    backend = GatedBackend()
    observer = Recorder()
    batcher = batcher_for(backend, observer=observer)
    first = start_blocked(batcher, backend)
    tags = [0.1, 0.2, 0.3, 0.4, 0.5]
    waiting = queue(batcher, tags)
    backend.release()
    first.finish()
    for client, tag in zip(waiting, tags, strict=True):
        assert client.finish().result is not None
        assert client.result.probabilities.shape == (1, 10)
        assert client.result.probabilities[0, 0] == pytest.approx(tag)
    assert [len(c) for c in backend.calls] == [1, 5]
    np.testing.assert_allclose(backend.calls[1][:, 0, 0], tags)  # merged in arrival order
    assert observer.batches == [(1, 1), (5, 5)]
    assert len(observer.delays) == 6


def test_max_batch_splits_the_queue_and_multi_image_requests_stay_whole() -> None:
    backend = GatedBackend()
    batcher = batcher_for(backend, max_batch=3)
    first = start_blocked(batcher, backend)
    waiting = [Client(batcher, image(0.1, count=2)), Client(batcher, image(0.2, count=2))]
    for n, client in enumerate(waiting, start=1):
        client.start()
        until(lambda n=n: batcher.pending() == n, "queueing")
    backend.release()
    first.finish()
    for client, tag in zip(waiting, (0.1, 0.2), strict=True):
        assert client.finish().result is not None
        np.testing.assert_allclose(client.result.probabilities[:, 0], [tag, tag])
    assert [len(c) for c in backend.calls] == [1, 2, 2]  # 2 + 2 > 3: two calls, never a split request


def test_a_backend_error_reaches_every_request_of_its_batch_only() -> None:
    backend = GatedBackend(fail=Unavailable("backend down"))
    batcher = batcher_for(backend)
    first = start_blocked(batcher, backend)
    waiting = queue(batcher, [0.1, 0.2])
    backend.release()
    assert isinstance(first.finish().error, Unavailable)
    assert all(isinstance(c.finish().error, Unavailable) for c in waiting)
    assert [len(c) for c in backend.calls] == [1, 2]


def test_a_queued_request_gives_up_at_its_deadline_and_is_never_sent() -> None:
    backend = GatedBackend()
    batcher = batcher_for(backend)
    first = start_blocked(batcher, backend)
    started = time.monotonic()
    [late] = queue(batcher, [0.3], timeout=0.05)
    assert isinstance(late.finish().error, DeadlineExceeded)
    assert time.monotonic() - started < 1.0  # gave up while the first call was still in flight
    assert batcher.pending() == 0
    backend.release()
    first.finish()
    assert [len(c) for c in backend.calls] == [1]


def test_close_drains_the_queue_before_returning() -> None:
    backend = GatedBackend()
    batcher = batcher_for(backend)
    first = start_blocked(batcher, backend)
    waiting = queue(batcher, [0.1, 0.2, 0.3])
    drained: list[bool] = []
    closer = threading.Thread(target=lambda: drained.append(batcher.close(WAIT_S)))
    closer.start()
    time.sleep(0.05)
    assert not drained  # still waiting for the queue
    backend.release()
    closer.join(WAIT_S)
    assert drained == [True]
    assert first.finish().result is not None
    assert all(c.finish().result is not None for c in waiting)
    # After close, requests are still answered, each with a call of its own.
    assert batcher.run(image(0.9), WAIT_S).probabilities[0, 0] == pytest.approx(0.9)
    assert [len(c) for c in backend.calls] == [1, 3, 1]


def test_under_load_a_leader_waits_up_to_max_delay_for_the_batch_to_fill() -> None:
    backend = GatedBackend()
    batcher = batcher_for(backend, max_batch=4, max_delay_ms=300.0)
    first = start_blocked(batcher, backend)
    waiting = queue(batcher, [0.1, 0.2])  # load: two queued behind the call in flight
    backend.release()
    time.sleep(0.05)
    late = [Client(batcher, image(tag)) for tag in (0.3, 0.4)]  # arrive while the next leader waits
    for client in late:
        client.start()
    waiting += late
    first.finish()
    assert all(c.finish().result is not None for c in waiting)
    assert [len(c) for c in backend.calls] == [1, 4]


def test_configure_takes_effect_on_the_next_batch() -> None:
    backend = GatedBackend()
    batcher = batcher_for(backend, max_batch=32)
    first = start_blocked(batcher, backend)
    waiting = queue(batcher, [0.1, 0.2, 0.3])
    batcher.configure(BatchingConfig(enabled=True, max_batch=1, max_delay_ms=0.0))
    backend.release()
    first.finish()
    assert all(c.finish().result is not None for c in waiting)
    assert [len(c) for c in backend.calls] == [1, 1, 1, 1]


# -- through the app: validation before merging, and the routing file's policy reloaded live --------

VALID = {"instances": [[0.0] * 784]}


def post(app: Any, body: object, results: list[int]) -> threading.Thread:
    def send() -> None:
        client = app.test_client()
        results.append(client.post("/v1/models/mnist:predict", json=body).status_code)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def routing_file(path: Path, batching: dict[str, object]) -> Path:
    path.write_text(json.dumps({"models": {"mnist": {"backends": {"tf": 1}, "batching": batching}}}))
    return path


def test_through_the_app_a_bad_request_never_reaches_the_batch_and_the_policy_reloads_live(
    tmp_path: Path,
) -> None:
    backend = FakeBackend("tf", "tensorflow")
    gate = threading.Event()
    backend.hook = lambda: None if backend.calls > 1 else gate.wait(WAIT_S) and None
    routing = routing_file(tmp_path / "routing.yaml", {"max_batch": 8, "max_delay_ms": 0})
    settings = Settings(warmup=False, routing_file=routing, admin_token="t")
    app = create_app(settings, backends={"tf": backend})
    router = app.extensions["gateway"].router
    results: list[int] = []
    threads = [post(app, VALID, results)]
    until(lambda: backend.calls == 1, "the first call")
    threads += [post(app, VALID, results), post(app, VALID, results)]
    until(lambda: router.batch_pending("mnist", "tf") == 2, "two requests to queue")
    bad = post(app, {"instances": [[2.0] * 784]}, results)  # out of range: 400 before any batching
    bad.join(WAIT_S)
    assert results == [400]
    gate.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert sorted(results) == [200, 200, 200, 400]
    assert backend.sizes == [1, 2]

    routing_file(routing, {"enabled": False})
    reload = app.test_client().post("/admin/reload", headers={"Authorization": "Bearer t"})
    assert reload.status_code == 200
    backend.calls, backend.sizes, gate = 0, [], threading.Event()
    results.clear()
    threads = [post(app, VALID, results)]
    until(lambda: backend.calls == 1, "the first call")
    threads += [post(app, VALID, results), post(app, VALID, results)]
    until(lambda: backend.calls == 3, "unbatched calls of their own")
    gate.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert results == [200, 200, 200] and backend.sizes == [1, 1, 1]


@pytest.mark.parametrize(
    ("batching", "fragment"),
    [
        ("yes", "expected a mapping"),
        ({"max_batch": 0}, "max_batch"),
        ({"max_batch": 2.5}, "max_batch"),
        ({"max_delay_ms": -1}, "max_delay_ms"),
        ({"enabled": "on"}, "enabled"),
        ({"size": 3}, "unknown key"),
    ],
)
def test_routing_file_batching_errors_name_the_field(batching: object, fragment: str) -> None:
    data = {"models": {"mnist": {"backends": {"tf": 1}, "batching": batching}}}
    with pytest.raises(RoutingError, match=fragment):
        RoutingTable.parse(data, "routing.yaml", ["tf"])


def test_routing_file_batching_defaults() -> None:
    data = {"models": {"mnist": {"backends": {"tf": 1}, "batching": {}}}}
    assert RoutingTable.parse(data, "r", ["tf"]).models["mnist"].batching == BatchingConfig(enabled=True)
    plain = {"models": {"mnist": {"backends": {"tf": 1}}}}
    assert RoutingTable.parse(plain, "r", ["tf"]).models["mnist"].batching.enabled is False
