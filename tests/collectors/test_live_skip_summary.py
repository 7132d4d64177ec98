"""A skipped live Claude Code test is named, with its reason, in pytest's summary (`make test`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.collectors.test_claude_code_live import CLAUDE

ROOT = Path(__file__).resolve().parents[2]


def test_the_live_claude_code_skip_is_in_the_summary_line() -> None:
    """Without npm the live tests skip; the final line says "live Claude Code skipped" and a section
    above it gives the reason (a bare "8 skipped" hid it)."""
    if CLAUDE.exists():
        pytest.skip("the Claude Code CLI is installed: the live test runs instead of skipping")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DRIFTWATCH_"))}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's bin: no npm there
    result = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "tests/collectors/test_claude_code_live.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "live Claude Code skipped" in lines[-1], lines[-3:]
    assert "the live Claude Code test did not run" in result.stdout
    assert "npm not found" in result.stdout
