"""The independent client's interleaved window, against two fake TF Serving REST servers on loopback
(unit test: the fakes answer every request with the same class; the real servers are measured in the
integration and smoke tests)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from loadtests.independent import (
    BLOCK,
    DISCARD,
    STEP,
    CrossCheck,
    Digits,
    IndependentTarget,
    Slots,
    independent_records,
    run_concurrent,
    run_interleaved,
)
from loadtests.payloads import Digit
from loadtests.plan import INTERLEAVED, PlanSettings, build_plan
from loadtests.targets import select_targets

ARRIVALS: list[str] = []
"""Which fake answered, in the order the requests arrived."""


def _fake(name: str, answer: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            ARRIVALS.append(name)
            scores = [0.0] * 10
            scores[answer] = 1.0
            body = json.dumps({"predictions": [scores]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def servers() -> Iterator[dict[str, str]]:
    ARRIVALS.clear()
    started = {
        name: ThreadingHTTPServer(("127.0.0.1", 0), _fake(name, answer))
        for name, answer in (("a", 7), ("b", 3))
    }
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in started.values()]
    for thread in threads:
        thread.start()
    try:
        yield {name: f"http://127.0.0.1:{s.server_address[1]}" for name, s in started.items()}
    finally:
        for server in started.values():
            server.shutdown()
            server.server_close()


def test_targets_take_turns_in_blocks_and_wrong_answers_are_not_counted(servers: dict[str, str]) -> None:
    digits = Digits((Digit(0, 7, np.zeros((28, 28), dtype=np.float32)),))
    path = "/v1/models/mnist:predict"
    targets = {name: IndependentTarget(url, path, {}, "tfserving") for name, url in servers.items()}
    results = run_interleaved(targets, digits, 1.0, seed=1)
    # "a" answers the digit's class; "b" answers another, so none of its answers count
    assert results["a"].requests > 0 and results["a"].failures == 0
    assert results["b"].requests == 0 and results["b"].failures > 0
    assert results["a"].p50_ms > 0 and results["a"].tool.endswith(f"blocks of {BLOCK}")
    runs = [len(run) for run in "".join(ARRIVALS).replace("ab", "a b").replace("ba", "b a").split()]
    assert set(runs) <= {BLOCK, 2 * BLOCK}, (
        "one target at a time, a block each (a target can go last, then first)"
    )
    measured_blocks = (results["a"].requests + 0.0) / (BLOCK - DISCARD)
    assert measured_blocks == int(measured_blocks), "the first answers of every block are left out"
    short = run_interleaved(targets, digits, 0.0, seed=2)
    assert short["a"].requests == BLOCK - DISCARD and short["b"].failures == BLOCK, "every target once"


def test_records_give_each_target_its_own_figure_per_round() -> None:
    settings = PlanSettings(users=(1,), repetitions=2, independent=("tfserving-rest", "torchserve-rest"))
    plan = build_plan(select_targets("tfserving-rest,torchserve-rest"), [], settings)
    windows = [p for p in plan.phases if p.kind == "independent"]
    assert [w.target for w in windows] == [INTERLEAVED, INTERLEAVED]

    def check(target: str) -> CrossCheck:
        return CrossCheck(target, "t", 2.0, 100, 0, 1.5, 3.0, 50.0)

    results = {
        windows[0].index: {
            "tfserving-rest": check("tfserving-rest"),
            "torchserve-rest": check("torchserve-rest"),
        }
    }
    records = independent_records(plan, results)
    assert [(r["target"], r["rep"], r["step"]) for r in records] == [
        ("tfserving-rest", 0, STEP),
        ("torchserve-rest", 0, STEP),
    ]
    assert records[0]["latency_ms"] == {"p50": 1.5, "p99": 3.0}


def test_time_slots_give_every_target_one_slot_per_cycle_and_fill_the_time() -> None:
    slots = Slots.plan(["a", "b", "c"], 3.0, seed=4)
    assert len(slots.order) == 12 and slots.slot_s == pytest.approx(0.25)
    for cycle in range(4):
        assert sorted(slots.order[3 * cycle : 3 * cycle + 3]) == ["a", "b", "c"]
    assert len({slots.order[0:3], slots.order[3:6], slots.order[6:9]}) > 1, "a new order each cycle"
    fitted = Slots.plan(["a", "b"], 1.1, seed=0)  # two cycles of 0.275 s fill 1.1 s exactly
    assert fitted.slot_s * len(fitted.order) == pytest.approx(1.1)
    assert fitted.at(0.0) == (0, False) and fitted.at(fitted.settle_s + 0.01) == (0, True)
    assert fitted.at(fitted.slot_s + 0.01) == (1, False), "each slot starts unsettled"
    assert fitted.at(1.2) is None and fitted.counted_s("a") == pytest.approx(2 * 0.275 * 0.7)
    assert Slots.plan(["a", "b"], 0.0, seed=0).order != (), "every target at least once"


def test_concurrent_connections_follow_the_slots_together(servers: dict[str, str]) -> None:
    digits = Digits((Digit(0, 7, np.zeros((28, 28), dtype=np.float32)),))
    path = "/v1/models/mnist:predict"
    targets = {name: IndependentTarget(url, path, {}, "tfserving") for name, url in servers.items()}
    results = run_concurrent(targets, digits, 1.0, connections=3, seed=1)
    assert results["a"].requests > 0 and results["a"].failures == 0 and results["a"].rps > 0
    assert results["b"].requests == 0 and results["b"].failures > 0, "wrong answers are not counted"
    assert "3 keep-alive connections" in results["a"].tool
    measured = list(ARRIVALS)
    switches = sum(1 for x, y in itertools.pairwise(measured) if x != y)
    # 4 slots: the connections move together, so the targets change a few times at each boundary,
    # never request by request
    assert switches <= 3 * 3 + 3, switches
    assert len(measured) > 20 * switches


def test_the_concurrent_part_ends_by_its_deadline(servers: dict[str, str]) -> None:
    digits = Digits((Digit(0, 7, np.zeros((28, 28), dtype=np.float32)),))
    targets = {"a": IndependentTarget(servers["a"], "/v1/models/mnist:predict", {}, "tfserving")}
    began = time.time()
    results = run_concurrent(targets, digits, 30.0, connections=2, deadline=began + 0.6)
    assert time.time() - began < 3.0, "the slots were fitted to the time left, not to 30 s"
    assert results["a"].seconds <= 0.6 and results["a"].requests > 0
