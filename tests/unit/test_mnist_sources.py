"""Source order, verification and atomic caching, on tiny IDX files (no network).

Remote sources are replaced by in-test stand-ins that implement the same ``fetch`` protocol.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import pytest

from exporters.mnist import (
    MNIST_DIR_ENV,
    MNIST_FILES,
    IdxFile,
    MnistUnavailable,
    SourceFailed,
    load_mnist,
    locate_mnist,
)
from tests.unit.idx_files import specs_for, tiny_dataset, write_dataset


class StubSource:
    """Test stand-in for a remote source: returns fixed contents or raises."""

    def __init__(self, contents: dict[str, bytes] | None, description: str = "stub source") -> None:
        self.contents = contents
        self.description = description
        self.calls = 0

    def fetch(self, files: Sequence[IdxFile], workdir: Path, log: object) -> dict[str, bytes]:
        self.calls += 1
        if self.contents is None:
            raise SourceFailed("unreachable (stub)")
        return dict(self.contents)


def _quiet(message: str) -> None:
    pass


def test_named_directory_comes_first(tmp_path: Path) -> None:
    contents = tiny_dataset()
    named = write_dataset(tmp_path / "named", contents)
    remote = StubSource(contents)
    paths, origin = locate_mnist(
        cache_dir=tmp_path / "cache",
        environ={MNIST_DIR_ENV: str(named)},
        remote_sources=[remote],
        files=specs_for(contents),
        log=_quiet,
    )
    assert origin.startswith(f"${MNIST_DIR_ENV}")
    assert all(path.parent == named for path in paths.values())
    assert remote.calls == 0
    assert not (tmp_path / "cache").exists()


def test_named_directory_accepts_gzip_originals(tmp_path: Path) -> None:
    contents = tiny_dataset()
    named = tmp_path / "named"
    named.mkdir()
    for name, data in contents.items():
        (named / f"{name}.gz").write_bytes(gzip.compress(data))
    data = load_mnist(
        cache_dir=tmp_path / "cache",
        environ={MNIST_DIR_ENV: str(named)},
        remote_sources=[],
        files=specs_for(contents),
        log=_quiet,
    )
    assert data.train_images.shape == (6, 28, 28)
    assert data.test_labels.shape == (3,)


def test_remote_source_fills_cache_then_cache_is_reused(tmp_path: Path) -> None:
    contents = tiny_dataset()
    cache = tmp_path / "cache"
    remote = StubSource(contents)
    specs = specs_for(contents)
    _, origin = locate_mnist(cache_dir=cache, environ={}, remote_sources=[remote], files=specs, log=_quiet)
    assert "stub source" in origin
    assert sorted(p.name for p in cache.iterdir()) == sorted(contents)  # no temp files left behind
    _, origin = locate_mnist(cache_dir=cache, environ={}, remote_sources=[remote], files=specs, log=_quiet)
    assert origin.startswith("cache")
    assert remote.calls == 1


def test_corrupt_download_is_not_cached_and_next_source_is_tried(tmp_path: Path) -> None:
    contents = tiny_dataset()
    corrupt = dict(contents)
    corrupt["train-images-idx3-ubyte"] = corrupt["train-images-idx3-ubyte"][:-5]
    cache = tmp_path / "cache"
    bad, good = StubSource(corrupt, "bad mirror"), StubSource(contents, "good mirror")
    _, origin = locate_mnist(
        cache_dir=cache, environ={}, remote_sources=[bad, good], files=specs_for(contents), log=_quiet
    )
    assert "good mirror" in origin
    assert bad.calls == 1


def test_all_sources_failing_lists_each_one(tmp_path: Path) -> None:
    contents = tiny_dataset()
    bad = dict(contents)
    bad["t10k-labels-idx1-ubyte"] = b"\0\0\0\0" + bad["t10k-labels-idx1-ubyte"][4:]
    named = write_dataset(tmp_path / "named", bad)
    with pytest.raises(MnistUnavailable) as caught:
        locate_mnist(
            cache_dir=tmp_path / "cache",
            environ={MNIST_DIR_ENV: str(named)},
            remote_sources=[StubSource(None, "npm stub"), StubSource(bad, "mirror stub")],
            files=specs_for(contents),
            log=_quiet,
        )
    message = str(caught.value)
    assert f"${MNIST_DIR_ENV} ({named})" in message
    assert "t10k-labels-idx1-ubyte" in message and "magic number" in message
    assert "cache (" in message
    assert "npm stub: unreachable" in message
    assert "mirror stub" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    contents = tiny_dataset()
    specs = specs_for(contents)
    altered = dict(contents)
    data = bytearray(altered["train-labels-idx1-ubyte"])
    data[-1] = (data[-1] + 1) % 10
    altered["train-labels-idx1-ubyte"] = bytes(data)
    named = write_dataset(tmp_path / "named", altered)
    with pytest.raises(
        MnistUnavailable, match=r"train-labels-idx1-ubyte: SHA-256 [0-9a-f]{64} does not match"
    ):
        locate_mnist(
            cache_dir=tmp_path / "cache",
            environ={MNIST_DIR_ENV: str(named)},
            remote_sources=[],
            files=specs,
            log=_quiet,
        )


def test_published_checksums_are_the_four_originals() -> None:
    assert [spec.name for spec in MNIST_FILES] == [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    assert MNIST_FILES[0].sha256 == "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"


def test_write_atomic_leaves_nothing_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError("disk full (simulated)")

    from model_store.store import write_bytes_atomic

    monkeypatch.setattr("model_store.store.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(tmp_path / "train-images-idx3-ubyte", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []
