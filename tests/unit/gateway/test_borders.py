"""The gateway stands alone: nothing under ``gateway/`` imports the servers' launcher package, the load
tests, the bench or the exporters (the image ships without them; tests/k8s runs it that way)."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

GATEWAY = Path(gateway.__file__).parent
FOREIGN = {"serving", "loadtests", "gatewaybench", "exporters"}


def imported_packages(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_of_the_gateway_imports_another_project_package() -> None:
    crossings = {
        str(path.relative_to(GATEWAY)): sorted(imported_packages(path) & FOREIGN)
        for path in sorted(GATEWAY.rglob("*.py"))
    }
    assert {path: found for path, found in crossings.items() if found} == {}
    assert len(crossings) > 20  # the walk saw the package


def test_the_walk_would_see_a_crossing(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import json\nfrom serving.settings import X\ndef f():\n    import loadtests.plan\n")
    assert imported_packages(module) == {"json", "serving", "loadtests"}
