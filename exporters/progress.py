"""A dependency-free progress bar for downloads and training loops.

On a terminal it redraws one line; in logs (CI, pipes) it prints a line every 10%.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, label: str, unit: str = "", stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._interactive = self.stream.isatty()
        self._last_decile = -1
        self.suffix = ""

    def advance(self, amount: int = 1, suffix: str = "") -> None:
        self.done = min(self.done + amount, self.total) if self.total else self.done + amount
        if suffix:
            self.suffix = suffix
        self._draw()

    def close(self) -> None:
        self._draw(final=True)
        if self._interactive:
            self.stream.write("\n")
        self.stream.flush()

    def _draw(self, final: bool = False) -> None:
        fraction = self.done / self.total if self.total else 0.0
        elapsed = time.monotonic() - self.started
        amount = _human(self.done, self.unit) + (f"/{_human(self.total, self.unit)}" if self.total else "")
        line = f"{self.label}: {fraction:6.1%} {amount} {elapsed:5.1f}s {self.suffix}".rstrip()
        if self._interactive:
            width = 24
            filled = int(width * fraction)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label}: [{bar}] {line[len(self.label) + 2 :]}")
            self.stream.flush()
            return
        decile = int(fraction * 10)
        if decile != self._last_decile or final:
            if final and decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(line + "\n")
            self.stream.flush()


def _human(amount: int, unit: str) -> str:
    if unit != "B":
        return f"{amount}{unit}"
    size = float(amount)
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or suffix == "GiB":
            return f"{size:.0f}{suffix}" if suffix == "B" else f"{size:.1f}{suffix}"
        size /= 1024
    return f"{size:.1f}GiB"
