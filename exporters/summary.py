"""Plain-text tables for the command line."""

from __future__ import annotations

from collections.abc import Sequence

from exporters.verify import VerificationReport
from model_store import VersionRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024 / 1024:.2f} MiB" if num_bytes >= 1024 * 1024 else f"{num_bytes / 1024:.1f} KiB"


def version_table(record: VersionRecord) -> str:
    """Accuracy, training time, size and checksum of each artifact of one version."""
    training = record.training
    rows = []
    for name, artifact in record.artifacts.items():
        if artifact.test_accuracy is None:
            continue
        framework = training.get(artifact.framework, {})
        rows.append(
            [
                artifact.framework,
                name,
                f"{artifact.test_accuracy:.2%}",
                f"{framework.get('train_seconds', float('nan')):.1f} s",
                _size(artifact.size_bytes),
                artifact.sha256[:16],
                artifact.path,
            ]
        )
    headers = ["framework", "artifact", "test accuracy", "training", "size", "sha256 (first 16)", "path"]
    return table(headers, rows)


def verification_table(report: VerificationReport) -> str:
    rows = [
        [
            check.name,
            check.framework,
            f"{check.max_abs_diff:.1e}",
            "yes" if check.argmax_identical else "NO",
            f"{check.accuracy:.2%}",
            check.details,
        ]
        for check in report.checks
    ]
    headers = ["artifact", "framework", "max |Δp|", "same argmax", "test accuracy", "notes"]
    return table(headers, rows)
