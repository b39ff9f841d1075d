"""Lay out the model store for the serving pods' init containers (the Dockerfile's model-artifacts target).

Every version in the store is checked against its recorded SHA-256 digests first (a truncated or
altered file fails the image build), then copied into the layout the servers read::

    <out>/tfserving/<model>/<version>/    the SavedModel files and version.json (TF Serving's base_path)
    <out>/torchserve/<model>.<version>.mar the archive, named as TorchServe's config.properties loads it

Only ``model_store`` (standard library only) is needed, so this runs in a plain Python image.

    python artifacts.py --store model_store/artifacts --out /artifacts
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from model_store import MODEL_NAME, ModelStore, StoreError
from model_store.store import VERSION_RECORD


def mar_name(model: str, version: int) -> str:
    """Must match k8s/tools/manifests.py (and serving.torchserve.launcher); a test checks it."""
    return f"{model}.{version}.mar"


def lay_out(store: ModelStore, out: Path) -> list[int]:
    versions = store.versions()
    if not versions:
        raise StoreError(f"no model version in {store.model_dir}; run `make demo` or `make export` first")
    for version in versions:
        record = store.check_integrity(version)
        source = store.version_dir(version)
        target = out / "tfserving" / store.model_name / str(version)
        for relative in [*record.artifacts["saved_model"].files, VERSION_RECORD]:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, target / relative)
        archive = out / "torchserve" / mar_name(store.model_name, version)
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / record.artifacts["torchserve_mar"].path, archive)
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="artifacts.py", description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="the store root (model_store/artifacts)")
    parser.add_argument("--model", default=MODEL_NAME)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        versions = lay_out(ModelStore(args.store, args.model), args.out)
    except StoreError as exc:
        print(f"artifacts.py: {exc}", file=sys.stderr)
        return 1
    print(f"artifacts.py: versions {versions} of {args.model} verified and laid out in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
