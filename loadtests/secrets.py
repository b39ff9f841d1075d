"""Reports are made to be shared: no TorchServe key may stay in one.

A run that starts TorchServe with token authorization keeps its working directory (logs, config)
in the report folder, and TorchServe writes ``key_file.json`` (management, inference and API keys)
there. :func:`scrub_report` deletes every such file and redacts those keys wherever else they
appear in the folder (logs, results) before the run ends.
"""

from __future__ import annotations

from pathlib import Path

from gateway.backends.torchserve_keys import TokenError, read_keys

__all__ = ["KEY_FILE_NAME", "REDACTED", "scrub_report", "secrets_in"]

KEY_FILE_NAME = "key_file.json"
REDACTED = b"[redacted]"
_MAX_SCANNED_BYTES = 64 * 1024 * 1024


def _keys_in(root: Path) -> set[str]:
    keys: set[str] = set()
    for key_file in root.rglob(KEY_FILE_NAME):
        try:
            found = read_keys(key_file)
        except TokenError:
            continue  # unreadable: it is deleted all the same
        # A very short key would redact ordinary text by accident.
        keys.update(k for k in (found.management, found.inference, found.api) if len(k) >= 6)
    return keys


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def secrets_in(root: Path, keys: set[str]) -> list[Path]:
    """Files under ``root`` that are key files or contain any of ``keys``."""
    needles = [key.encode() for key in keys]
    found = []
    for path in _files(root):
        scanned = path.stat().st_size <= _MAX_SCANNED_BYTES
        if path.name == KEY_FILE_NAME or (scanned and any(n in path.read_bytes() for n in needles)):
            found.append(path)
    return found


def scrub_report(root: Path) -> list[Path]:
    """Delete key files under ``root`` and redact their keys in every other file; the paths changed."""
    if not root.is_dir():
        return []
    keys = _keys_in(root)
    changed = []
    for key_file in root.rglob(KEY_FILE_NAME):
        key_file.unlink()
        changed.append(key_file)
    needles = [key.encode() for key in keys]
    for path in secrets_in(root, keys):
        data = path.read_bytes()
        for needle in needles:
            data = data.replace(needle, REDACTED)
        path.write_bytes(data)
        changed.append(path)
    return changed
