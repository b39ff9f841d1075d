"""The backend registry is the one place a backend is named: the load tests' targets, addresses, users,
labels and colours are derived from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from gateway.settings import Settings
from loadtests.backends import BACKEND_NAMES, BACKENDS, spec
from loadtests.report.charts import color
from loadtests.report.labels import target_label
from loadtests.targets import ADDRESS_OPTIONS, GATEWAY_PAIRS, HEADLINE_PAIRS, TARGETS, address, target
from serving.endpoints import Endpoints, default_endpoints
from serving.settings import ServingSettings


def _fields(cls: type) -> set[str]:
    return {item.name for item in dataclasses.fields(cls)}


def test_entries_are_consistent() -> None:
    assert len(set(BACKEND_NAMES)) == len(BACKENDS) and len(BACKENDS) % 2 == 0  # visited in pairs
    for entry in BACKENDS:
        assert spec(entry.name) is entry
        assert entry.framework in ("tensorflow", "pytorch")
        assert entry.protocol in ("rest", "grpc", "in-process")
        assert entry.direct == (entry.protocol != "in-process")
        if entry.direct:
            assert entry.api in ("tfserving", "torchserve", "v2")
            assert entry.address in _fields(Settings), entry.name
            assert entry.endpoint in _fields(Endpoints), entry.name
            assert entry.port in _fields(ServingSettings), entry.name
    assert len({entry.color for entry in BACKENDS}) == len(BACKENDS)


def test_every_entry_has_its_load_test_targets() -> None:
    expected = {f"gateway/{name}" for name in BACKEND_NAMES} | {e.name for e in BACKENDS if e.direct}
    assert {t.name for t in TARGETS} == expected and len(TARGETS) == len(expected)
    for entry in BACKENDS:
        via = target(f"gateway/{entry.name}")
        assert (via.backend, via.framework, via.protocol) == (entry.name, entry.framework, "rest")
        assert via.user_class == f"Gateway{entry.stem}User" and via.via_gateway
        assert (f"gateway/{entry.name}", entry.name) in GATEWAY_PAIRS or not entry.direct
        if entry.direct:
            direct = target(entry.name)
            assert (direct.framework, direct.protocol, direct.api) == (
                entry.framework,
                entry.protocol,
                entry.api,
            )
            assert direct.user_class == f"{entry.stem}User" and direct.path == "direct"
    assert {name for _, *pair in HEADLINE_PAIRS for name in pair} <= {t.name for t in TARGETS}


def test_addresses_labels_and_colours_come_from_the_registry() -> None:
    endpoints = default_endpoints()
    options = dict(ADDRESS_OPTIONS)
    for entry in (e for e in BACKENDS if e.direct):
        assert address(endpoints, target(entry.name)) == getattr(endpoints, entry.endpoint) != ""
        assert entry.label in options[entry.endpoint.replace("_", "-")]
    for t in TARGETS:
        assert t.name not in target_label(t.name, official=True)  # a human label, not the identifier
        assert color(t.name) == spec(t.backend or "").color
    assert target_label("v2-grpc", None) == "Triton, gRPC"
    assert target_label("gateway/tfserving-rest", False) == "gateway -> TF Serving stand-in REST"
    assert target_label("gateway/embedded-pytorch", None) == "gateway, embedded PyTorch"


def test_the_registry_and_what_derives_from_it_import_nothing_heavy() -> None:
    code = (
        "import sys, gateway.registry\n"
        "light = sorted(m for m in sys.modules if m.split('.')[0] in ('gateway', 'serving', 'model_store'))\n"
        "import loadtests.targets, serving.endpoints, loadtests.report.labels\n"
        "print(light, sorted(m for m in ('numpy', 'grpc', 'tensorflow', 'torch') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['gateway', 'gateway.registry'] []", done.stdout


def test_the_gateway_builds_every_entry_from_its_class_and_settings() -> None:
    from gateway.backends import Backend, BackendPool, build

    settings = Settings()
    pool = BackendPool(settings)
    assert list(pool.names()) == list(BACKEND_NAMES)
    for entry in BACKENDS:
        assert pool.framework(entry.name) == entry.framework
        if entry.name == "tfserving-grpc":
            continue  # its class imports TensorFlow when built; the integration tests build it
        backend = build(entry, settings)
        try:
            assert (
                isinstance(backend, Backend) and type(backend).__name__ == entry.backend_class.split(":")[1]
            )
            assert (backend.name, backend.framework) == (entry.name, entry.framework)
        finally:
            backend.close()


def test_routing_and_the_api_accept_exactly_the_registry_names() -> None:
    from gateway.backends import BackendPool
    from gateway.openapi import document
    from gateway.routing import RoutingError, RoutingTable

    known = BackendPool(Settings()).names()
    every = {"models": {"mnist": {"backends": dict.fromkeys(BACKEND_NAMES, 1)}}}
    assert RoutingTable.parse(every, "all", known).backend_names() == set(BACKEND_NAMES)
    with pytest.raises(RoutingError, match="unknown backend"):
        RoutingTable.parse({"models": {"mnist": {"backends": {"triton-rest": 1}}}}, "typo", known)
    choice = document()["paths"]["/v1/models/{model}:predict"]["post"]["parameters"]
    enums = [p["schema"]["enum"] for p in choice if p["name"] in ("backend", "X-Gateway-Backend")]
    assert enums and all(enum == [*BACKEND_NAMES, "tensorflow", "pytorch"] for enum in enums)
