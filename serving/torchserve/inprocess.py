"""Run a .mar's own handler in this process, the way TorchServe's Python worker does.

Used by ``exporters verify`` and by tests: the archive is unpacked, the handler module is
imported from the unpacked files (not from this project), initialised with TorchServe's
real ``Context`` and metrics cache, and fed request batches shaped like the worker's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ts
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

_METRICS_CONFIG = Path(ts.__file__).parent / "configs" / "metrics.yaml"


class ArchiveError(ValueError):
    """The .mar is not a usable TorchServe archive (the message names it)."""


@dataclass(frozen=True)
class HandlerReply:
    status: int
    body: Any


def read_mar_manifest(mar: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(mar) as archive:
            manifest: dict[str, Any] = json.loads(archive.read("MAR-INF/MANIFEST.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ArchiveError(f"{mar}: not a readable TorchServe archive ({exc})") from exc
    return manifest


class InProcessHandler:
    """The handler inside ``mar``, unpacked into ``workdir`` and initialised on the CPU."""

    def __init__(self, mar: Path, workdir: Path) -> None:
        self.manifest = read_mar_manifest(mar)
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(workdir)
        model = self.manifest["model"]
        handler_file = workdir / Path(model["handler"]).name
        if not handler_file.is_file():
            raise ArchiveError(f"{mar}: handler {model['handler']} is not in the archive")
        module_name = f"_mar_handler_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, handler_file)
        if spec is None or spec.loader is None:
            raise ArchiveError(f"{mar}: cannot import {handler_file.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        self.context = Context(
            model["modelName"],
            str(workdir),
            self.manifest,
            batch_size=1,
            gpu=None,
            mms_version="in-process",
            metrics=MetricsCacheYamlImpl(config_file_path=str(_METRICS_CONFIG)),
        )
        self.handler = module.MnistHandler()
        self.handler.initialize(self.context)

    def handle(self, bodies: list[Any]) -> list[HandlerReply]:
        """One batch: each body is what the worker passes as ``data`` (dict for JSON, else bytes)."""
        self.context.request_processor = [RequestProcessor({}) for _ in bodies]
        self.context.metrics.request_ids = {index: str(index) for index in range(len(bodies))}
        outputs = self.handler.handle([{"body": body} for body in bodies], self.context)
        return [
            HandlerReply(self.context.get_response_status(index)[0], output)
            for index, output in enumerate(outputs)
        ]
