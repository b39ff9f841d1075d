"""TorchServe's token authorization: read ``key_file.json`` and keep the inference key fresh.

The gateway's TorchServe backends own this; ``serving`` (which starts TorchServe), the load tests and
the bench use it from here, so the gateway needs nothing from them.

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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
    """Bearer keys for TorchServe clients (the launcher, the gateway, load tests).

    Reads ``key_file`` and re-reads it whenever it changes (TorchServe rewrites it when keys are
    renewed) or after ``invalidate()`` (a rejected key). With ``management_url`` it also renews
    the inference key ``renew_margin_s`` before it expires; without it (e.g. a gateway pod that
    only sees a mounted copy of the file) renewal is left to whoever can reach the management API.
    A ``static_token`` replaces the file entirely; no file and no static token means auth is off.
    """

    def __init__(
        self,
        key_file: Path | None,
        management_url: str | None = None,
        *,
        static_token: str = "",
        renew_margin_s: float = 300.0,
        recheck_s: float = 1.0,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.key_file = key_file
        self.management_url = management_url.rstrip("/") if management_url else None
        self.static_token = static_token
        self.renew_margin = dt.timedelta(seconds=renew_margin_s)
        self._now = now
        self._lock = threading.Lock()
        self._keys: Keys | None = None
        self._mtime: int | None = None
        self._lifetime: dt.timedelta | None = None
        """How long a key renewed by this source lives (learnt at the first renewal)."""
        self._recheck = dt.timedelta(seconds=recheck_s)
        self._token: str | None = None
        self._token_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def _margin(self) -> dt.timedelta:
        """Renew this long before expiry: the configured margin, but at most half a key's lifetime
        (a key that lives less than the margin would otherwise be renewed again at once, forever)."""
        if self._lifetime is None:
            return self.renew_margin
        return min(self.renew_margin, self._lifetime / 2)

    def keys(self) -> Keys:
        """The current keys, the inference key renewed first if it is about to expire (at most one
        renewal per call); TokenError if there is no readable key file."""
        keys = self._read()
        expires = keys.inference_expires
        if self.management_url and expires is not None and expires - self._now() < self._margin():
            self.renew_inference_key()
            keys = self._read()
            if keys.inference_expires is not None:
                self._lifetime = keys.inference_expires - self._now()
        return keys

    def _read(self) -> Keys:
        if self.key_file is None:
            raise TokenError("no TorchServe key file configured")
        with self._lock:
            try:
                mtime = self.key_file.stat().st_mtime_ns
            except FileNotFoundError as exc:
                raise TokenError(f"{self.key_file}: no TorchServe key file") from exc
            if self._keys is None or mtime != self._mtime:
                self._keys, self._mtime = read_keys(self.key_file), mtime
            return self._keys

    def token(self) -> str:
        """The inference key to send, or "" when token authorization is not in use.

        The key file (and the renewal margin) is checked at most every ``recheck_s``: two stats and
        the clock cost about 8 µs, on every request of the gateway's TorchServe backends. A key that
        changes in between is refused by TorchServe, and the caller's ``invalidate()`` and retry
        read the new one at once."""
        if self.static_token:
            return self.static_token
        now = self._now()
        cached = self._token
        if cached is not None and now - self._token_at < self._recheck:
            return cached
        token = "" if self.key_file is None or not self.key_file.exists() else self.keys().inference
        self._token, self._token_at = token, now
        return token

    def header(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    inference_header = header

    def management_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys().management}"}

    def invalidate(self) -> None:
        """Forget the cached keys (after TorchServe rejected one) so the next call re-reads the file."""
        with self._lock:
            self._keys = None
            self._token = None

    def renew_inference_key(self) -> None:
        """Ask TorchServe for a new inference key (it rewrites the key file)."""
        if self.key_file is None or self.management_url is None:
            raise TokenError("renewing needs the key file and the management API's address")
        api_key = read_keys(self.key_file).api
        request = urllib.request.Request(
            f"{self.management_url}/token?type=inference",
            method="PUT",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5.0) as response:  # nosec B310  # the configured management URL
                status, body = response.status, response.read()[:400]
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()[:400]
        except OSError as exc:
            raise TokenError(f"cannot renew the TorchServe inference key: {exc}") from exc
        if status != 200:
            raise TokenError(
                f"TorchServe refused to renew the inference key ({status}): {body.decode(errors='replace')}"
            )
        self.invalidate()


def is_token_rejection(status: int, body: bytes) -> bool:
    """TorchServe 0.12 rejects a missing/expired key with 400 InvalidKeyException (not 401)."""
    return status == 401 or (status == 400 and b"InvalidKeyException" in body[:400])
