"""TorchServe's token authorization: read ``key_file.json`` and keep the inference key fresh.

TorchServe (0.11.1+) writes ``key_file.json`` into its working directory::

    {"management": {"key": ..., "expiration time": ...},
     "inference":  {"key": ..., "expiration time": ...},
     "API": {"key": ...}}

Keys expire (``token_expiration_min``, 60 by default). ``PUT /token?type=inference`` on the
management API, authorised with the API key, issues a new inference key and rewrites the file.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from serving.http import request_json


class TokenError(RuntimeError):
    """The key file is missing or unreadable, or a key could not be renewed."""


@dataclass(frozen=True)
class Keys:
    management: str
    inference: str
    api: str
    inference_expires: dt.datetime | None
    management_expires: dt.datetime | None


def _expiry(section: dict[str, str]) -> dt.datetime | None:
    raw = section.get("expiration time")
    if not raw:
        return None
    # Java prints nanoseconds; Python parses at most microseconds.
    head, _, tail = raw.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(f"{head}.{tail[:6] or '0'}+00:00")


def read_keys(path: Path) -> Keys:
    try:
        data = json.loads(path.read_text())
        return Keys(
            management=data["management"]["key"],
            inference=data["inference"]["key"],
            api=data["API"]["key"],
            inference_expires=_expiry(data["inference"]),
            management_expires=_expiry(data["management"]),
        )
    except FileNotFoundError as exc:
        raise TokenError(f"{path}: no TorchServe key file (is TorchServe running with token auth?)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError(f"{path}: not a TorchServe key file ({exc})") from exc


class TokenSource:
    """Current bearer keys from the key file, renewing the inference key before it expires."""

    def __init__(self, key_file: Path, management_url: str, renew_margin_s: float = 300.0) -> None:
        self.key_file = key_file
        self.management_url = management_url.rstrip("/")
        self.renew_margin = dt.timedelta(seconds=renew_margin_s)
        self._lock = threading.Lock()
        self._keys: Keys | None = None
        self._mtime = -1.0

    def keys(self) -> Keys:
        with self._lock:
            try:
                mtime = self.key_file.stat().st_mtime
            except FileNotFoundError as exc:
                raise TokenError(f"{self.key_file}: no TorchServe key file") from exc
            if self._keys is None or mtime != self._mtime:
                self._keys, self._mtime = read_keys(self.key_file), mtime
            keys = self._keys
        expires = keys.inference_expires
        if expires is not None and expires - dt.datetime.now(dt.UTC) < self.renew_margin:
            self.renew_inference_key()
            return self.keys()
        return keys

    def inference_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys().inference}"}

    def management_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys().management}"}

    def renew_inference_key(self) -> None:
        """Ask TorchServe for a new inference key (it rewrites the key file)."""
        api_key = read_keys(self.key_file).api
        try:
            status, body = request_json(
                f"{self.management_url}/token?type=inference",
                method="PUT",
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=5.0,
            )
        except OSError as exc:
            raise TokenError(f"cannot renew the TorchServe inference key: {exc}") from exc
        if status != 200:
            raise TokenError(f"TorchServe refused to renew the inference key ({status}): {body}")
        with self._lock:
            self._keys = None
