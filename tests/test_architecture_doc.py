"""docs/architecture.md is true to the files: every path it names exists, and it has its sections."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
#: Top-level folders a backticked path may start with; ``_x/...`` paths are inside ``driftwatch/``.
FOLDERS = ("driftwatch/", "collectors/", "detectors/", "tests/", "docs/", "benchmarks/", "examples/")


def named_paths(text: str) -> list[str]:
    """Backticked file or folder paths (``driftwatch/_serve/store.py``, ``_cli/compare.py``,
    ``_cli/shared.detect`` → ``driftwatch/_cli/shared.py``); placeholders such as ``_<name>.py`` skipped."""
    found = []
    for token in re.findall(r"`([^`\s]+)`", text):
        if "/" not in token or "<" in token or "{" in token or "://" in token:
            continue
        path = (
            token if token.startswith(FOLDERS) else f"driftwatch/{token}" if token.startswith("_") else None
        )
        if path is None:
            continue
        folder, _, name = path.rpartition("/")
        if name and "." in name and not name.endswith((".py", ".json", ".md", ".db", ".toml")):
            name = name.split(".")[0] + ".py"  # module.attribute
        found.append(f"{folder}/{name}" if name else f"{folder}/")
    return found


def test_the_extraction() -> None:
    text = "`driftwatch/_serve/store.py`, `_cli/shared.detect`, `tests/support/`, `collectors/_<source>.py`"
    assert named_paths(text) == ["driftwatch/_serve/store.py", "driftwatch/_cli/shared.py", "tests/support/"]


def test_every_path_it_names_exists() -> None:
    paths = named_paths(DOC.read_text())
    assert len(paths) > 40  # the map names the files on the way
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_it_has_the_diagram_the_two_paths_and_where_to_add() -> None:
    text = DOC.read_text()
    assert text.count("```") == 2  # one diagram
    for heading in ("## One outcome, in-process", "## One OTLP payload, through `driftwatch serve`"):
        assert heading in text
    for item in ("**A collector**", "**A detector**", "**A sink**", "**A subcommand**"):
        assert item in text.split("## Where to add")[1]
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()  # the README links it
