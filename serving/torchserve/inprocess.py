"""Run a .mar's own handler in this process through TorchServe's own model loader.

Used by ``exporters verify`` and by tests: the archive is unpacked and loaded with
``ts.model_loader.TsModelLoader`` (the code TorchServe's Python worker runs, including its
rules about the handler module), then fed request batches shaped like the worker's.
"""

from __future__ import annotations

import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ts
from ts.context import RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
from ts.model_loader import TsModelLoader

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
    """The handler inside ``mar``, unpacked into ``workdir`` and loaded on the CPU."""

    def __init__(self, mar: Path, workdir: Path, batch_size: int = 8) -> None:
        self.manifest = read_mar_manifest(mar)
        with zipfile.ZipFile(mar) as archive:
            archive.extractall(workdir)
        handler = self.manifest["model"]["handler"]
        module_name = Path(handler).stem
        # The worker imports the handler by module name from the model directory; make sure a
        # handler module loaded earlier from another archive does not shadow this one.
        sys.modules.pop(module_name, None)
        sys.path.insert(0, str(workdir))
        try:
            self.service = TsModelLoader().load(
                self.manifest["model"]["modelName"],
                str(workdir),
                handler,
                gpu_id=None,
                batch_size=batch_size,
                metrics_cache=MetricsCacheYamlImpl(config_file_path=str(_METRICS_CONFIG)),
            )
        finally:
            sys.path.remove(str(workdir))
            sys.modules.pop(module_name, None)
        self.context = self.service.context

    @property
    def model(self) -> Any:
        """The loaded handler's TorchScript module."""
        return self.service._entry_point.__self__.model

    def handle(self, bodies: list[Any]) -> list[HandlerReply]:
        """One batch: each body is what the worker passes as ``body`` (dict for JSON, else bytes)."""
        self.context.request_processor = [RequestProcessor({}) for _ in bodies]
        self.context.metrics.request_ids = {index: str(index) for index in range(len(bodies))}
        outputs = self.service._entry_point([{"body": body} for body in bodies], self.context)
        return [
            HandlerReply(self.context.get_response_status(index)[0], output)
            for index, output in enumerate(outputs)
        ]
