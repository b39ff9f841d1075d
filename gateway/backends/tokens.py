"""TorchServe's inference token: read from its key file, re-read when the file changes or on a 401."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

__all__ = ["TokenSource"]

log = logging.getLogger(__name__)


class TokenSource:
    """``Authorization`` header value for TorchServe; empty when auth is off or no key is known.

    A static token wins; otherwise the ``inference.key`` of ``key_file`` (TorchServe rewrites it
    when keys expire), cached by the file's modification time.
    """

    def __init__(self, key_file: Path | None, static_token: str = "") -> None:
        self._path = key_file
        self._static = static_token
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._token = ""

    def header(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def token(self) -> str:
        if self._static or self._path is None:
            return self._static
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError:
            return self._token
        if mtime != self._mtime:
            self._read(mtime)
        return self._token

    def invalidate(self) -> None:
        """Forget the cached key (after a 401) so the next call re-reads the file."""
        with self._lock:
            self._mtime = None

    def _read(self, mtime: int) -> None:
        assert self._path is not None
        with self._lock:
            try:
                data = json.loads(self._path.read_text())
                key = data["inference"]["key"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("cannot read TorchServe key file %s: %s", self._path, exc)
                return
            if isinstance(key, str):
                self._token, self._mtime = key, mtime
