"""Model store: version numbering, atomic publish, never overwrite, integrity checks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from model_store import (
    CONTRACT,
    ArtifactRecord,
    IntegrityError,
    ModelStore,
    StoreNotWritable,
    VersionNotFound,
    VersionRecord,
)
from model_store.checksums import combined_sha256, sha256_file

REPO = Path(__file__).resolve().parents[2]


def _publish(
    store: ModelStore, payload: bytes = b"weights", hook: Callable[[Path], None] | None = None
) -> int:
    with store.draft() as draft:
        (draft.path / "model.bin").write_bytes(payload)
        if hook is not None:
            hook(draft.path)
        files = {"model.bin": sha256_file(draft.path / "model.bin")}
        artifact = ArtifactRecord(
            "pytorch", "test", "model.bin", files, combined_sha256(files), len(payload), 0.5
        )
        record = VersionRecord(
            "mnist", draft.version, "2026-01-01T00:00:00+00:00", CONTRACT.to_dict(), {"model": artifact}
        )
        store.publish(draft, record)
    return draft.version


def test_versions_count_up_and_index_lists_them(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    assert store.versions() == [] and store.latest_version() is None
    assert [_publish(store), _publish(store), _publish(store)] == [1, 2, 3]
    index = json.loads((tmp_path / "mnist" / "manifest.json").read_text())
    assert index["latest_version"] == 3
    assert sorted(index["versions"]) == ["1", "2", "3"]
    assert index["versions"]["2"]["contract"]["input"]["name"] == "image"


def test_failed_build_leaves_no_version_and_no_staging(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    _publish(store)
    with pytest.raises(RuntimeError, match="boom"), store.draft() as draft:
        (draft.path / "half-written").write_bytes(b"x")
        raise RuntimeError("boom")
    assert store.versions() == [1]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == [".lock", "1", "manifest.json"]


def test_abandoned_staging_from_a_killed_export_is_swept(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    store.ensure_writable()
    leftover = tmp_path / "mnist" / ".staging-99999-dead"
    leftover.mkdir()
    assert store.versions() == []  # hidden from readers
    _publish(store)
    assert not leftover.exists()


def test_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    _publish(store, b"first")
    original = (store.version_dir(1) / "model.bin").read_bytes()
    with store.draft() as draft:
        store.version_dir(draft.version).mkdir()  # a competitor appeared with the same number
        record = VersionRecord("mnist", draft.version, "t", {}, {})
        with pytest.raises(FileExistsError):
            store.publish(draft, record)
    assert (store.version_dir(1) / "model.bin").read_bytes() == original


def test_integrity_check_names_altered_and_missing_files(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    _publish(store, b"0123456789")
    store.check_integrity(1)
    artifact = store.version_dir(1) / "model.bin"
    artifact.write_bytes(b"01234")  # truncated
    with pytest.raises(IntegrityError, match=r"model\.bin: SHA-256 .* truncated or altered"):
        store.check_integrity(1)
    artifact.unlink()
    with pytest.raises(IntegrityError, match=r"model\.bin: missing"):
        store.check_integrity(1)


def test_unknown_version(tmp_path: Path) -> None:
    with pytest.raises(VersionNotFound, match="version 7"):
        ModelStore(tmp_path, "mnist").record(7)


def test_unwritable_store_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreNotWritable, match="not writable"):
        ModelStore(blocker / "store", "mnist").ensure_writable()


def test_root_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_store import default_root

    monkeypatch.setenv("MODEL_STORE_DIR", str(tmp_path))
    assert default_root() == tmp_path.resolve()


def test_published_records_are_readable_by_other_users(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "mnist")
    _publish(store)
    for path in (store.model_dir / "manifest.json", store.version_dir(1) / "version.json"):
        assert path.stat().st_mode & 0o777 == 0o644, path


_CONCURRENT_PUBLISHER = """
import json, os, sys, time
from pathlib import Path
from tests.unit.test_store import _publish
from model_store import MODEL_NAME, ModelStore

root, me, other, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:  # start together
    time.sleep(0.005)
store = ModelStore(root, MODEL_NAME)
saw_other = False

def inside(draft_path):
    global saw_other
    (root / f"inside-{me}").touch()
    window = time.monotonic() + 1.5  # the other process is trying to open its draft now
    while time.monotonic() < window:
        if (root / f"inside-{other}").exists():
            saw_other = True
            break
        time.sleep(0.01)
    (root / f"inside-{me}").unlink()

version = _publish(store, payload=os.urandom(2_000_000), hook=inside)
print(json.dumps({"version": version, "saw_other": saw_other}))
"""


def test_two_processes_publishing_at_once_get_consecutive_versions(tmp_path: Path) -> None:
    """Two exporters race for the store: versions N+1 and N+2, both whole, never two drafts at once."""
    store = ModelStore(tmp_path, "mnist")
    _publish(store)
    _publish(store)  # N = 2
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CONCURRENT_PUBLISHER, str(tmp_path), me, other, str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    try:
        go.touch()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    assert sorted(a["version"] for a in answers) == [3, 4]
    assert not any(a["saw_other"] for a in answers), "two drafts were open at the same time"
    assert store.versions() == [1, 2, 3, 4]
    for version in (3, 4):
        store.check_integrity(version)
    index = json.loads((tmp_path / "mnist" / "manifest.json").read_text())
    assert index["latest_version"] == 4 and sorted(index["versions"]) == ["1", "2", "3", "4"]
    assert all(index["versions"][str(v)] == store.record(v).to_dict() for v in (1, 2, 3, 4))
    assert not list((tmp_path / "mnist").glob(".staging-*"))
