"""Write the container-side configs that ``docker-compose.yml`` mounts (``run/compose/``).

The paths inside these files are the containers' paths: TF Serving reads SavedModels from
``/models/<model>``; TorchServe reads archives from ``/home/model-server/model-store`` and
writes its key file into ``/home/model-server/keys`` (a directory shared with clients).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from model_store import ModelStore
from serving.settings import ServingSettings
from serving.tfserving.launcher import version_labels
from serving.tfserving.official import TfServingOptions, write_config_files
from serving.tfserving.versioning import VersionPolicy
from serving.torchserve.config import TorchServeConfig, render
from serving.torchserve.launcher import prepare_model_store, select_versions

TF_MODELS_DIR = "/models"
TS_MODEL_STORE = "/home/model-server/model-store"
ALL_INTERFACES = "0.0.0.0"  # inside a container; compose publishes ports on 127.0.0.1 only  # nosec B104


@dataclass(frozen=True)
class ComposeFiles:
    tfserving_dir: Path
    torchserve_config: Path
    torchserve_model_store: Path
    torchserve_keys: Path
    versions: list[int]


def write_compose_configs(settings: ServingSettings, out_dir: Path) -> ComposeFiles:
    """Generate every file the compose services mount, for the versions ``settings.versions`` selects."""
    versions = select_versions(ModelStore(settings.store_root, settings.model_name), settings.versions)
    tf_dir = out_dir / "tfserving"
    write_config_files(
        TfServingOptions(
            base_path=Path(TF_MODELS_DIR) / settings.model_name,
            config_dir=tf_dir,
            model_name=settings.model_name,
            version_labels=version_labels(versions),
            version_policy=VersionPolicy("specific", versions=tuple(versions)),
        )
    )
    ts_dir = out_dir / "torchserve"
    # prepare_model_store copies the verified archives into <run_dir>/torchserve/model-store.
    mar_files = prepare_model_store(replace(settings, run_dir=out_dir), versions)
    config = TorchServeConfig(
        model_name=settings.model_name,
        mar_files=mar_files,
        model_store=TS_MODEL_STORE,
        host=ALL_INTERFACES,
        workers=settings.ts_workers,
        batch_size=settings.ts_batch_size,
        max_batch_delay_ms=settings.ts_max_batch_delay_ms,
        response_timeout_s=settings.ts_response_timeout_s,
        token_auth=settings.ts_token_auth,
    )
    (ts_dir / "config.properties").write_text(render(config))
    (ts_dir / "config-gpu.properties").write_text(render(replace(config, gpus=1)))
    keys = ts_dir / "keys"
    shutil.rmtree(keys, ignore_errors=True)
    keys.mkdir()
    keys.chmod(0o777)  # the image's user (uid 1000) writes key_file.json here
    return ComposeFiles(tf_dir, ts_dir / "config.properties", ts_dir / "model-store", keys, versions)
