"""The package's shape (issue 14): few modules at the top of ``driftwatch/``, no oversized class."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Source folders checked for class size (collectors/ and detectors/ install under driftwatch).
FOLDERS = ("driftwatch", "collectors", "detectors")
MAX_TOP_MODULES = 12
MAX_CLASS_LINES = 450


def test_at_most_12_modules_directly_in_driftwatch() -> None:
    top = sorted(p.name for p in (ROOT / "driftwatch").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules directly in driftwatch/: {top}"


def class_sizes() -> dict[str, int]:
    """``path:Class`` → its lines (decorators excluded), for every class, nested ones too."""
    sizes: dict[str, int] = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    end = node.end_lineno or node.lineno
                    sizes[f"{path.relative_to(ROOT)}:{node.name}"] = end - node.lineno + 1
    return sizes


def test_no_class_over_450_lines() -> None:
    sizes = class_sizes()
    assert "driftwatch/_monitor/monitor.py:Monitor" in sizes  # the walk sees the packages
    big = {name: lines for name, lines in sizes.items() if lines > MAX_CLASS_LINES}
    assert not big, f"classes over {MAX_CLASS_LINES} lines: {big}"
