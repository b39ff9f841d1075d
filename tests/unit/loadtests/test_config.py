"""Knobs: every one documented in --help, presets fill what is not given, targets and pinning parse."""

from __future__ import annotations

import asyncio
from dataclasses import fields

import pytest

from loadtests.compare import needed_components
from loadtests.config import PRESETS, CompareConfig, build_parser, config_from_args
from loadtests.targets import (
    CALIBRATION,
    GATEWAY_PAIRS,
    TARGETS,
    address,
    locust_args,
    select_targets,
    target,
)
from serving.cpu import parse_cpus, plan_pinning
from serving.endpoints import Endpoints
from serving.nullserver import NULL_REST_ANSWER, NullHttp, content_length


def test_help_documents_every_knob() -> None:
    parser = build_parser()
    documented = {action.dest: action.help for action in parser._actions}
    for item in fields(CompareConfig):
        assert item.name in documented, f"--{item.name.replace('_', '-')} is missing"
        assert documented[item.name], f"--{item.name.replace('_', '-')} has no help"


def test_presets_fill_only_what_is_not_given() -> None:
    parser = build_parser()
    demo = config_from_args(parser.parse_args(["--preset", "demo", "--users", "2,4"]))
    assert demo.users == "2,4"  # explicit flag wins
    assert demo.repetitions == PRESETS["demo"]["repetitions"]
    full = config_from_args(parser.parse_args([]))
    assert (full.users, full.repetitions, full.min_requests, full.warmup_requests) == (
        "1,4,16,64",
        3,
        1000,
        2000,
    )
    settings = full.plan_settings()
    assert settings.users == (1, 4, 16, 64) and settings.rates == ()
    assert config_from_args(parser.parse_args(["--rates", "50,100.5"])).plan_settings().rates == (50.0, 100.5)


def test_target_selection() -> None:
    assert [t.name for t in select_targets("direct")] == [
        "tfserving-rest",
        "torchserve-rest",
        "tfserving-grpc",
        "torchserve-grpc",
        "v2-rest",
        "v2-grpc",
    ]
    assert len(select_targets("all")) == 14 == len(TARGETS)
    assert all("grpc" in (t.backend or "") for t in select_targets("grpc"))
    assert [t.name for t in select_targets("gateway", skip="gateway/embedded-pytorch")][-1] == (
        "gateway/embedded-tensorflow"
    )
    with pytest.raises(ValueError, match="unknown target"):
        select_targets("tfserving")
    assert ("gateway/torchserve-grpc", "torchserve-grpc") in GATEWAY_PAIRS
    assert ("gateway/v2-rest", "v2-rest") in GATEWAY_PAIRS  # Triton, through the gateway and direct


def test_start_runs_only_the_servers_the_targets_need() -> None:
    assert needed_components(select_targets("tfserving-rest")) == ("tfserving",)
    assert needed_components(select_targets("gateway/embedded-pytorch")) == ("gateway",)
    assert needed_components(select_targets("all")) == ("torchserve", "tfserving", "triton", "gateway")
    assert needed_components(select_targets("gateway/v2-grpc")) == ("triton", "gateway")


def test_addresses_per_target_and_as_locust_options() -> None:
    endpoints = Endpoints(tfserving_rest_url="http://h:1", gateway_url="http://g:2", null_grpc_target="n:3")
    assert address(endpoints, target("tfserving-rest")) == "http://h:1"
    assert address(endpoints, target("gateway/torchserve-grpc")) == "http://g:2"
    assert address(endpoints, CALIBRATION[1]) == "n:3"
    assert address(endpoints, target("torchserve-rest")) == ""
    assert locust_args(endpoints) == [
        "--tfserving-rest-url",
        "http://h:1",
        "--gateway-url",
        "http://g:2",
        "--null-grpc-target",
        "n:3",
    ]


def test_cpu_lists_and_pinning_plans() -> None:
    assert parse_cpus("0-2,5") == (0, 1, 2, 5)
    two = plan_pinning("auto", (0, 1))
    assert (two.generator, two.servers, two.mode) == ((0,), (1,), "auto")
    eight = plan_pinning("auto", tuple(range(8)))
    assert eight.generator == (0, 1) and eight.servers == (2, 3, 4, 5, 6, 7)
    assert plan_pinning("auto", (0,)).mode == "off"
    assert plan_pinning("1:0", (0, 1)).servers == (1,)
    with pytest.raises(ValueError):
        plan_pinning("3:0", (0, 1))
    with pytest.raises(ValueError):
        plan_pinning("nonsense", (0, 1))


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)


def test_null_endpoint_answers_each_complete_request_once() -> None:
    protocol = NullHttp()
    transport = FakeTransport()
    protocol.connection_made(transport)
    body = b'{"instances": [[0]]}'
    request = b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    protocol.data_received(request[:30])
    assert transport.written == b""
    protocol.data_received(request[30:] + request)  # the rest of the first, then a pipelined second
    assert transport.written.count(NULL_REST_ANSWER) == 2
    assert content_length(b"GET / HTTP/1.1\r\ncontent-length: 12") == 12
