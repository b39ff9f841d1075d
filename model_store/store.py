"""The versioned model store on disk.

Layout (``<root>`` defaults to ``model_store/artifacts``)::

    <root>/<model>/manifest.json            index of all versions (rebuilt on publish)
    <root>/<model>/<version>/                a TF SavedModel (TF Serving's base_path is <root>/<model>)
    <root>/<model>/<version>/version.json    the version's record: artifacts, checksums, contract, ...
    <root>/<model>/<version>/torchscript/    the TorchScript module
    <root>/<model>/<version>/torchserve/     the TorchServe archive (.mar)
    <root>/<model>/<version>/reference/      the trained models' outputs on the test set (for verification)

A version is built in a hidden staging directory and renamed into place under a lock,
so readers (and TF Serving, which only looks at numeric directories) never see half a version,
and an existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model_store.checksums import combined_sha256, sha256_file
from model_store.errors import IntegrityError, StoreNotWritable, VersionNotFound
from model_store.manifest import VersionRecord, build_index

DEFAULT_ROOT = Path(__file__).resolve().parent / "artifacts"
ROOT_ENV_VAR = "MODEL_STORE_DIR"
VERSION_RECORD = "version.json"
INDEX_FILE = "manifest.json"
REFERENCE_DIR = "reference"
"""Each version's folder of the trained models' own outputs on the test set (what serving must match)."""
_STAGING_PREFIX = ".staging-"
_LOCK_FILE = ".lock"


def default_root() -> Path:
    """The store root: ``$MODEL_STORE_DIR`` if set, else ``model_store/artifacts`` in the checkout."""
    configured = os.environ.get(ROOT_ENV_VAR)
    return Path(configured).expanduser().resolve() if configured else DEFAULT_ROOT


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path``, fsync, rename into place: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp makes 0600; servers in containers read the store as other users
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_json_atomic(path: Path, data: object) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


@dataclass(frozen=True)
class Draft:
    """A reserved version number and the staging directory its files go into."""

    version: int
    path: Path


class ModelStore:
    """Versions of one model under a store root."""

    def __init__(self, root: Path, model_name: str) -> None:
        self.root = Path(root)
        self.model_name = model_name
        self.model_dir = self.root / model_name

    # -- reading -------------------------------------------------------------------------

    def versions(self) -> list[int]:
        """Published versions, ascending (staging directories are never listed)."""
        if not self.model_dir.is_dir():
            return []
        return sorted(
            int(entry.name)
            for entry in self.model_dir.iterdir()
            if entry.is_dir() and entry.name.isdigit() and (entry / VERSION_RECORD).is_file()
        )

    def latest_version(self) -> int | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def version_dir(self, version: int) -> Path:
        return self.model_dir / str(version)

    def torchscript_file(self, version: int) -> Path:
        """The version's TorchScript module (KeyError when the version has none)."""
        path = self.version_dir(version) / self.record(version).artifacts["torchscript"].path
        return path / "model.pt" if path.is_dir() else path

    def record(self, version: int) -> VersionRecord:
        path = self.version_dir(version) / VERSION_RECORD
        if not path.is_file():
            raise VersionNotFound(
                f"{self.model_name} version {version} is not in the store at {self.model_dir}"
            )
        return VersionRecord.from_dict(json.loads(path.read_text()))

    def check_integrity(self, version: int) -> VersionRecord:
        """Re-hash every recorded file; raise IntegrityError naming the first bad one."""
        record = self.record(version)
        version_dir = self.version_dir(version)
        for name, artifact in record.artifacts.items():
            for relative, expected in artifact.files.items():
                path = version_dir / relative
                if not path.is_file():
                    raise IntegrityError(f"{path}: missing (artifact {name!r} of version {version})")
                actual = sha256_file(path)
                if actual != expected:
                    raise IntegrityError(
                        f"{path}: SHA-256 {actual} does not match the manifest's {expected} "
                        f"(artifact {name!r} of version {version}; truncated or altered)"
                    )
            if combined_sha256(artifact.files) != artifact.sha256:
                raise IntegrityError(
                    f"{version_dir / VERSION_RECORD}: digest of artifact {name!r} is inconsistent"
                )
        return record

    # -- writing -------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Fail now, before any expensive work, if versions cannot be written here."""
        try:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.model_dir, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise StoreNotWritable(f"model store {self.model_dir} is not writable: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.model_dir / _LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def next_version(self) -> int:
        latest = self.latest_version()
        return 1 if latest is None else latest + 1

    @contextlib.contextmanager
    def draft(self) -> Iterator[Draft]:
        """Reserve the next version and a hidden directory to build it in.

        The store lock is held until the block ends, so concurrent exports get distinct
        numbers. Call ``publish`` inside the block; if the block raises (or never publishes),
        the staging directory is removed and no version appears.
        """
        self.ensure_writable()
        with self._locked():
            self._remove_abandoned_staging()
            path = self.model_dir / f"{_STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
            path.mkdir()
            try:
                yield Draft(self.next_version(), path)
            finally:
                shutil.rmtree(path, ignore_errors=True)

    def publish(self, draft: Draft, record: VersionRecord) -> Path:
        """Write the record into the draft and rename it to ``<model>/<version>``."""
        if record.version != draft.version:
            raise ValueError(f"record is for version {record.version}, the draft for {draft.version}")
        target = self.version_dir(draft.version)
        if target.exists():
            raise FileExistsError(f"{target} already exists; versions are never overwritten")
        write_json_atomic(draft.path / VERSION_RECORD, record.to_dict())
        os.rename(draft.path, target)
        self._rebuild_index()
        return target

    def _rebuild_index(self) -> None:
        records = [self.record(version) for version in self.versions()]
        write_json_atomic(self.model_dir / INDEX_FILE, build_index(self.model_name, records))

    def _remove_abandoned_staging(self) -> None:
        """Delete staging directories of killed exports (called under the lock, so none is live)."""
        for entry in self.model_dir.glob(f"{_STAGING_PREFIX}*"):
            shutil.rmtree(entry, ignore_errors=True)
