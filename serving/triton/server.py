"""The Triton process: PyTriton starts ``tritonserver`` 2.51 and serves the store's TorchScript.

Runs as a script under the Triton environment's Python (``build/triton-venv``), not the project's:
``python server.py --config <run_dir>/triton/server.json`` (written by ``serving.triton.launcher``).
It imports only the standard library, numpy, torch and pytriton.

Per served version it binds one PyTriton model ``mnist`` version N whose inference function runs
the TorchScript file on CPU: ``image`` FP32 [-1, 28, 28] -> ``probabilities`` FP32 [-1, 10], the
Open Inference Protocol V2 contract of the gateway's /v2. Triton's frontends and (when on) its
dynamic batcher sit in front; its Python backend stub passes each batch to this process.

SIGTERM (``python -m serving down``) stops Triton cleanly: PyTriton stops ``tritonserver`` and
removes its shared-memory regions and sockets.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

LOG = logging.getLogger("serving.triton")


def make_infer(model: torch.jit.ScriptModule) -> Callable[..., dict[str, np.ndarray]]:
    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            probabilities = model(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
        return {"probabilities": probabilities.numpy().astype(np.float32, copy=False)}

    return infer


def remove_model_copies(workspace: str) -> list[str]:
    """Remove the copies Triton made of this server's models in /tmp; returns their paths.

    Triton copies each model PyTriton loads into ``/tmp/folderXXXXXX`` (it ignores TMPDIR) and removes
    the copy on unload; a shutdown cut short (``down`` signals the whole process group at once) leaves it
    behind. Ours are those whose config.pbtxt names this server's workspace.
    """
    removed = []
    for folder in Path("/tmp").glob("folder??????"):  # nosec B108  # Triton ignores TMPDIR; its copies are only removed
        try:
            mine = f'"{workspace}"' in (folder / "config.pbtxt").read_text()
        except OSError:
            continue
        if mine:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # leaves `with Triton(...)`, whose exit stops tritonserver cleanly


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    config: dict[str, Any] = json.loads(parser.parse_args(argv).config.read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    if config["dynamic_batching"]:
        batcher: DynamicBatcher | None = DynamicBatcher(
            max_queue_delay_microseconds=config["max_queue_delay_us"]
        )
    else:
        batcher = None  # max_batch_size > 0 without dynamic_batching: each request runs on its own
    model_config = ModelConfig(batching=True, max_batch_size=config["max_batch"], batcher=batcher)
    triton_config = TritonConfig(
        http_address=config["host"],
        http_port=config["http_port"],
        grpc_address=config["host"],
        grpc_port=config["grpc_port"],
        metrics_address=config["host"],
        metrics_port=config["metrics_port"],
        allow_sagemaker=False,
        allow_vertex_ai=False,
        exit_timeout_secs=5,
        log_verbose=0,
    )
    models = {
        int(version): torch.jit.load(path, map_location="cpu").eval()
        for version, path in config["versions"].items()
    }
    LOG.info(
        "torch %s (%d threads); versions %s; max_batch_size %d, dynamic batching %s",
        torch.__version__,
        torch.get_num_threads(),
        sorted(models),
        config["max_batch"],
        f"on ({config['max_queue_delay_us']} us max queue delay)" if batcher else "off",
    )
    try:
        with Triton(config=triton_config, workspace=config["workspace"]) as triton:
            for version, model in sorted(models.items()):
                triton.bind(
                    model_name=config["model_name"],
                    model_version=version,
                    infer_func=make_infer(model),
                    inputs=[Tensor(name="image", dtype=np.float32, shape=(28, 28))],
                    outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(10,))],
                    config=model_config,
                    strict=True,
                )
            triton.serve()
    except KeyboardInterrupt:
        LOG.info("stopped")
    finally:
        leftovers = remove_model_copies(config["workspace"])
        if leftovers:
            LOG.info("removed Triton's model copies left by an interrupted unload: %s", leftovers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
