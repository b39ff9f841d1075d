"""The virtual environment Triton runs in: ``build/triton-venv`` (git-ignored), built at first use.

It holds ``nvidia-pytriton`` (the ``tritonserver`` 2.51 binary, its Python backend and one backend
stub per Python minor version) and the CPU build of torch 2.13.0, about 1.3 GB; building it takes
one to two minutes where the wheels are cached locally.

Two facts decide which Python builds it:

* PyTriton picks the backend stub for the minor version of the Python it runs under, and that stub
  embeds ``libpythonX.Y.so.1.0``. The library must come from the *same build* as that Python's
  standard library: with Debian's 3.11.2 library under pyenv's 3.11.7 stdlib, the stub fails
  (``'_thread.RLock' object has no attribute '_recursion_count'``). So the Python must be built
  with ``--enable-shared``, and the server is started with its ``LIBDIR`` first on
  ``LD_LIBRARY_PATH`` (see ``TritonEnvironment.library_path``).
* torch is pinned to the CPU build, ``torch==2.13.0+cpu``: the default torch wheel for Linux is the
  CUDA build, which pulls several GB of CUDA libraries. The CPU build must be reachable to pip
  (a local wheel directory via ``PIP_FIND_LINKS``, or the PyTorch CPU index via
  ``PIP_EXTRA_INDEX_URL``); where it is not, the build stops and says so.

By default the environment is built with the Python that runs ``python -m serving`` (its base
interpreter, e.g. pyenv's 3.11.7); ``SERVING_TRITON_PYTHON`` chooses another one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.errors import ServingError

PYTRITON_REQUIREMENT = "nvidia-pytriton==0.7.0"
TORCH_REQUIREMENT = "torch==2.13.0+cpu"
REQUIREMENTS = (PYTRITON_REQUIREMENT, TORCH_REQUIREMENT)
STAMP_NAME = "serving-triton.json"
PIP_TIMEOUT_S = 1200.0
"""Upper bound for the whole ``pip install`` (it normally takes one to two minutes)."""

Say = Callable[[str], None]

_PROBE_BASE = """
import json, sys, sysconfig
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "full_version": sys.version.split()[0],
    "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
    "libdir": sysconfig.get_config_var("LIBDIR") or "",
    "soname": sysconfig.get_config_var("INSTSONAME") or "",
}))
"""

_PROBE_VENV = """
import json, sys
from importlib.metadata import version
from pathlib import Path
import numpy, torch, pytriton
stub = (Path(pytriton.__file__).parent / "tritonserver" / "python_backend_stubs"
        / ("%d.%d" % sys.version_info[:2]) / "triton_python_backend_stub")
print(json.dumps({
    "pytriton_version": version("nvidia-pytriton"),
    "torch_version": torch.__version__,
    "torch_cuda": torch.version.cuda,
    "numpy_version": numpy.__version__,
    "stub": str(stub) if stub.is_file() else "",
}))
"""


class TritonUnavailable(ServingError):
    """Triton cannot run here; the message says why and what would fix it."""


@dataclass(frozen=True)
class TritonEnvironment:
    venv: str
    python: str
    """The venv's interpreter, which runs serving/triton/server.py."""
    base_python: str
    python_version: str
    libdir: str
    """Where the base Python's ``libpythonX.Y.so.1.0`` lies (first on the server's LD_LIBRARY_PATH)."""
    pytriton_version: str
    torch_version: str
    numpy_version: str
    stub: str
    requirements: list[str]
    build_seconds: float

    def library_path(self, current: str = "") -> str:
        return ":".join(part for part in (self.libdir, current) if part)


def default_base_python() -> str:
    """The interpreter the running Python's venv was made from (itself outside a venv)."""
    return str(getattr(sys, "_base_executable", "") or sys.executable)


def load(venv: Path) -> TritonEnvironment | None:
    """The recorded environment, or None if it is missing, half-built or built for other pins."""
    try:
        data = json.loads((venv / STAMP_NAME).read_text())
        environment = TritonEnvironment(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    if tuple(environment.requirements) != REQUIREMENTS or not Path(environment.python).is_file():
        return None
    return environment


def ensure(venv: Path, base_python: str, say: Say, *, rebuild: bool = False) -> TritonEnvironment:
    """The environment in ``venv``, built first if it is missing, outdated or ``rebuild`` is set."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _lock(venv.parent / f".{venv.name}.lock", say):
        found = None if rebuild else load(venv)
        if found is not None:
            return found
        return build(venv, base_python or default_base_python(), say)


@contextlib.contextmanager
def _lock(path: Path, say: Say) -> Iterator[None]:
    """One build at a time (two shells, or tests in parallel, would otherwise race in pip)."""
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"triton: another process is building the Triton environment; waiting ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_json(command: list[str], what: str, timeout: float = 120.0) -> dict[str, object]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TritonUnavailable(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        raise TritonUnavailable(f"{what} failed:\n{result.stderr.strip()[-2000:]}")
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def check_base_python(base_python: str) -> dict[str, object]:
    """The base interpreter's facts; raises if the backend stub could not embed it."""
    if not shutil.which(base_python) and not Path(base_python).is_file():
        raise TritonUnavailable(f"SERVING_TRITON_PYTHON={base_python!r}: no such interpreter")
    facts = _run_json([base_python, "-c", _PROBE_BASE], f"probing {base_python}")
    library = Path(str(facts["libdir"])) / str(facts["soname"])
    if not facts["shared"] or not library.is_file():
        raise TritonUnavailable(
            f"{base_python} (Python {facts['full_version']}) has no shared libpython "
            f"(built without --enable-shared; looked for {library}). Triton's Python backend stub "
            "embeds libpython and needs the library of this very build; set SERVING_TRITON_PYTHON "
            "to a Python built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)"
        )
    return facts


def build(venv: Path, base_python: str, say: Say) -> TritonEnvironment:
    started = time.monotonic()
    facts = check_base_python(base_python)
    say(
        f"triton: building its environment in {venv} (first use only): Python {facts['full_version']} "
        f"from {base_python}, {PYTRITON_REQUIREMENT} and {TORCH_REQUIREMENT}, about 1.3 GB"
    )
    (venv / STAMP_NAME).unlink(missing_ok=True)
    say("triton: [1/3] creating the virtual environment")
    try:
        subprocess.run(
            [base_python, "-m", "venv", "--clear", str(venv)], check=True, timeout=300, capture_output=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise TritonUnavailable(f"creating {venv} with {base_python} failed: {exc}") from exc
    python = venv / "bin" / "python"
    say("triton: [2/3] pip install (one to two minutes with cached wheels; pip's progress follows)")
    _pip_install(python, say)
    say("triton: [3/3] checking the installed packages")
    installed = _run_json([str(python), "-c", _PROBE_VENV], "importing pytriton and torch in the venv")
    if installed["torch_cuda"]:
        raise TritonUnavailable(f"pip installed a CUDA build of torch ({installed['torch_version']})")
    if not installed["stub"]:
        raise TritonUnavailable(
            f"nvidia-pytriton {installed['pytriton_version']} has no Python backend stub for "
            f"Python {facts['version']}; set SERVING_TRITON_PYTHON to a Python it has one for"
        )
    environment = TritonEnvironment(
        venv=str(venv),
        python=str(python),
        base_python=base_python,
        python_version=str(facts["full_version"]),
        libdir=str(facts["libdir"]),
        pytriton_version=str(installed["pytriton_version"]),
        torch_version=str(installed["torch_version"]),
        numpy_version=str(installed["numpy_version"]),
        stub=str(installed["stub"]),
        requirements=list(REQUIREMENTS),
        build_seconds=round(time.monotonic() - started, 1),
    )
    stamp = venv / STAMP_NAME
    stamp.with_suffix(".tmp").write_text(json.dumps(asdict(environment), indent=2))
    stamp.with_suffix(".tmp").replace(stamp)  # written last: a half-built venv is rebuilt next time
    say(f"triton: environment ready in {environment.build_seconds:.0f}s")
    return environment


_PIP_PROGRESS = ("Collecting", "Downloading", "Installing collected", "Successfully installed", "ERROR")


def _pip_install(python: Path, say: Say) -> None:
    command = [
        str(python),
        "-m",
        "pip",
        "install",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "--timeout",
        "60",
        *REQUIREMENTS,
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        )
    except OSError as exc:
        raise TritonUnavailable(f"running pip failed: {exc}") from exc
    assert process.stdout is not None
    watchdog = threading.Timer(PIP_TIMEOUT_S, process.kill)  # pip may stall without printing
    watchdog.start()
    try:
        with process:
            for line in process.stdout:
                line = line.rstrip()
                lines.append(line)
                if line.lstrip().startswith(_PIP_PROGRESS):
                    say(f"  pip: {line.strip()[:160]}")
            returncode = process.wait(timeout=60)
    finally:
        timed_out = not watchdog.is_alive() and process.returncode == -9
        watchdog.cancel()
    if timed_out:
        raise TritonUnavailable(f"pip install took longer than {PIP_TIMEOUT_S:.0f}s; stopped it")
    if returncode == 0:
        return
    output = "\n".join(line for line in lines if "is ignored: it is neither" not in line)
    if "torch==2.13.0+cpu" in output and "No matching distribution" in output:
        raise TritonUnavailable(
            "pip found no CPU build of torch 2.13.0 (torch==2.13.0+cpu) for this Python. Make one "
            "reachable to pip (PIP_FIND_LINKS=<folder with the wheel>, or PIP_EXTRA_INDEX_URL=<the "
            "PyTorch CPU wheel index>). The default Linux torch wheel is the CUDA build (several GB "
            "with its CUDA libraries) and is deliberately not used. pip said:\n" + output[-1500:]
        )
    wanted = " ".join(REQUIREMENTS)
    raise TritonUnavailable(f"pip install {wanted} failed (exit {returncode}):\n{output[-3000:]}")
