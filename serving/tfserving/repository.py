"""The versions of one model: found on disk, loaded by policy, tracked by state, resolved for requests.

Behaves like TF Serving's file-system source with an availability-preserving manager: a poll
loads newly aspired versions first and unloads the others only once an aspired version is
available, so the model never goes dark during a roll-out. A version directory counts once it
is complete (``saved_model.pb`` and ``variables/``); hidden and non-numeric names are ignored.
A version that fails to load is retried on later polls, up to ``max_load_attempts`` times, and
again whenever its files change (a copy that was still in progress). As in TF Serving, the latest
policy does not fall back to an older version when the newest one cannot be loaded.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tensorflow_serving.apis.get_model_status_pb2 import ModelVersionStatus

from serving.tfserving.errors import Code, ServingError, invalid_argument, not_found
from serving.tfserving.servable import LoadedVersion, load_version
from serving.tfserving.versioning import VersionPolicy

logger = logging.getLogger(__name__)

State = ModelVersionStatus.State
Loader = Callable[[int, Path], LoadedVersion]

_VERSION_DIR = re.compile(r"^[0-9]+$")


def _files_signature(version_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the files a load reads; changes when a copy progresses."""
    paths = [version_dir / "saved_model.pb", *sorted((version_dir / "variables").glob("*"))]
    found = []
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            continue
        found.append((path.name, info.st_size, info.st_mtime_ns))
    return tuple(found)


@dataclass(frozen=True)
class VersionState:
    """One row of GetModelStatus: a manager state and the health that came with it."""

    state: int
    error_code: Code = Code.OK
    error_message: str = ""


def complete_versions(base_path: Path) -> dict[int, Path]:
    """Numeric version directories under ``base_path`` that hold a whole SavedModel."""
    found: dict[int, Path] = {}
    try:
        entries = list(base_path.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not _VERSION_DIR.match(entry.name) or not entry.is_dir():
            continue
        has_graph = (entry / "saved_model.pb").is_file() or (entry / "saved_model.pbtxt").is_file()
        if has_graph and (entry / "variables").is_dir():
            found[int(entry.name)] = entry
    return found


class ModelRepository:
    """Versions of ``model_name`` under ``base_path``; every public method is thread-safe."""

    def __init__(
        self,
        model_name: str,
        base_path: Path,
        policy: VersionPolicy,
        labels: Mapping[str, int],
        *,
        loader: Loader = load_version,
        max_load_attempts: int = 5,
    ) -> None:
        self.model_name = model_name
        self.base_path = base_path
        self.policy = policy
        self.labels = dict(labels)
        self._loader = loader
        self._max_load_attempts = max_load_attempts
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._loaded: dict[int, LoadedVersion] = {}
        self._states: dict[int, VersionState] = {}
        self._attempts: dict[int, int] = {}
        self._tried_files: dict[int, tuple[tuple[str, int, int], ...]] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """One poll of the base path: load what the policy wants, then unload what it no longer wants."""
        with self._refresh_lock:
            on_disk = complete_versions(self.base_path)
            aspired = self.policy.select(on_disk)
            for version in sorted(aspired - set(self._loaded), reverse=True):
                files = _files_signature(on_disk[version])
                if self._tried_files.get(version) != files:
                    self._attempts[version] = 0  # new or changed files: worth (re)trying
                if self._attempts.get(version, 0) < self._max_load_attempts:
                    self._tried_files[version] = files
                    self._load(version, on_disk[version])
            if any(version in self._loaded for version in aspired):
                for version in sorted(set(self._loaded) - aspired):
                    self._unload(version)

    def start_polling(self, interval_s: float) -> None:
        """Poll every ``interval_s`` seconds in a daemon thread; 0 polls never (TF Serving's meaning)."""
        if interval_s <= 0 or self._poller is not None:
            return
        self._poller = threading.Thread(
            target=self._poll, args=(interval_s,), name="version-poller", daemon=True
        )
        self._poller.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout_s)

    def _poll(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except Exception:  # a poll must never kill the poller
                logger.exception("polling %s failed", self.base_path)

    def _set_state(self, version: int, state: VersionState) -> None:
        with self._lock:
            self._states[version] = state

    def _load(self, version: int, path: Path) -> None:
        self._attempts[version] = self._attempts.get(version, 0) + 1
        self._set_state(version, VersionState(State.LOADING))
        logger.info("loading %s version %d from %s", self.model_name, version, path)
        try:
            servable = self._loader(version, path)
        except Exception as exc:  # TensorFlow raises many types for a broken SavedModel
            attempts = self._attempts[version]
            final = attempts >= self._max_load_attempts
            logger.warning(
                "loading %s version %d failed (attempt %d of %d%s): %s",
                self.model_name,
                version,
                attempts,
                self._max_load_attempts,
                ", giving up" if final else ", will retry on the next poll",
                exc,
            )
            self._set_state(version, VersionState(State.END, Code.UNKNOWN, f"Failed to load: {exc}"))
            return
        with self._lock:
            self._loaded[version] = servable
            self._states[version] = VersionState(State.AVAILABLE)
        logger.info("%s version %d is AVAILABLE", self.model_name, version)

    def _unload(self, version: int) -> None:
        self._set_state(version, VersionState(State.UNLOADING))
        with self._lock:
            self._loaded.pop(version, None)  # requests still running keep their own reference
            self._states[version] = VersionState(State.END)
        logger.info("unloaded %s version %d", self.model_name, version)

    # --- queries ---------------------------------------------------------------------------------

    def available_versions(self) -> list[int]:
        with self._lock:
            return sorted(self._loaded)

    def states(self) -> dict[int, VersionState]:
        with self._lock:
            return dict(self._states)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The servable a request names, failing with TF Serving's codes and messages."""
        if label is not None:
            if name != self.model_name or label not in self.labels:
                raise invalid_argument(f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        with self._lock:
            if name == self.model_name:
                if version is None and self._loaded:
                    return self._loaded[max(self._loaded)]
                if version is not None and version in self._loaded:
                    return self._loaded[version]
        request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise not_found(f"Servable not found for request: {request}")

    def version_states(self, name: str, version: int | None = None) -> dict[int, VersionState]:
        """States for GetModelStatus: one version, or every version this server has seen."""
        states = self.states() if name == self.model_name else {}
        if version is None:
            if not states:
                raise not_found(f"Could not find any versions of model {name}")
            return states
        if version not in states:
            raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
        return {version: states[version]}
