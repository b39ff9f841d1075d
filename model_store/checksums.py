"""SHA-256 helpers for files and directory trees."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(root: Path, *, exclude: frozenset[str] = frozenset()) -> dict[str, str]:
    """SHA-256 of every file under ``root``, keyed by POSIX relative path.

    Top-level entries named in ``exclude`` are skipped.
    """
    hashes: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in exclude or not path.is_file():
            continue
        hashes[relative.as_posix()] = sha256_file(path)
    return hashes


def combined_sha256(file_hashes: dict[str, str]) -> str:
    """One digest for a set of files: hash of the sorted ``path sha`` lines."""
    digest = hashlib.sha256()
    for relative, sha in sorted(file_hashes.items()):
        digest.update(f"{relative} {sha}\n".encode())
    return digest.hexdigest()
