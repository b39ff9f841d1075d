"""The versioned artifact store shared by exporters, servers, gateway and tests."""

from model_store.contract import CONTRACT, MODEL_NAME, NUM_CLASSES, ModelContract, TensorSpec
from model_store.errors import IntegrityError, StoreError, StoreNotWritable, VersionNotFound
from model_store.manifest import ArtifactRecord, VersionRecord
from model_store.store import REFERENCE_DIR, ModelStore, default_root

__all__ = [
    "CONTRACT",
    "MODEL_NAME",
    "NUM_CLASSES",
    "REFERENCE_DIR",
    "ArtifactRecord",
    "IntegrityError",
    "ModelContract",
    "ModelStore",
    "StoreError",
    "StoreNotWritable",
    "TensorSpec",
    "VersionNotFound",
    "VersionRecord",
    "default_root",
]
