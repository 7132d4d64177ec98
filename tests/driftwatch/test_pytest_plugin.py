"""pytest --driftwatch: a real pytest run of a small fixture project recorded as one outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.conftest import Harness

PROJECT = {
    "pytest.ini": "[pytest]\nasyncio_default_fixture_loop_scope = function\n",
    "test_small.py": (
        "import pytest\n\n"
        "def test_adds():\n    assert 1 + 1 == 2\n\n"
        "def test_joins():\n    assert '-'.join('ab') == 'a-b'\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_even(n):\n    assert n % 2 == 0\n\n"
        "@pytest.mark.skip(reason='not today')\n"
        "def test_skipped():\n    pass\n\n"
        "@pytest.mark.xfail\n"
        "def test_known_bug():\n    assert False\n\n"
        "@pytest.fixture\n"
        "def broken():\n    raise RuntimeError('setup fails')\n\n"
        "def test_setup_error(broken):\n    pass\n"
    ),
}
FAILED = {"test_small.py::test_even[1]", "test_small.py::test_setup_error"}


def make_project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in PROJECT.items():
        (root / name).write_text(text)
    return root


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_entry_point_is_registered() -> None:
    """The installed distribution registers the plugin under pytest's pytest11 entry point group."""
    names = {(ep.name, ep.value) for ep in entry_points(group="pytest11")}
    assert ("driftwatch", "driftwatch.pytest_plugin") in names


def test_records_a_real_pytest_run(tmp_path: Path) -> None:
    """Pass rate, success, duration, failing ids (label and side file) of one run; a second run appends."""
    project = make_project(tmp_path / "calc")
    side = tmp_path / "failures.jsonl"
    args = ("--driftwatch", f"--driftwatch-failures={side}", "--driftwatch-label=model=claude-x")
    proc = run_pytest(project, *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "driftwatch: recorded calc: pass rate 60.0% (5 tests, 2 failed)" in proc.stdout
    (line,) = (project / "driftwatch-outcomes.jsonl").read_text().splitlines()
    outcome = json.loads(line)
    assert outcome["task"] == "calc" and outcome["model"] == "claude-x"
    assert outcome["success"] is False and outcome["score"] == pytest.approx(3 / 5)
    assert 0 < outcome["latency_s"] < 60
    labels = outcome["labels"]
    assert (labels["tests"], labels["failed"], labels["skipped"], labels["exit_status"]) == (
        "5",
        "2",
        "2",
        "1",
    )
    assert set(labels["failed_tests"].split()) == FAILED
    (failures,) = [json.loads(x) for x in side.read_text().splitlines()]
    assert set(failures["failed"]) == FAILED and failures["time"] == outcome["time"]
    # The outcome file is the replay format: it reads back, and a second run appends to it.
    (project / "test_small.py").write_text("def test_ok():\n    pass\n")
    assert run_pytest(project, "--driftwatch", "--driftwatch-task=calc").returncode == 0
    from driftwatch.collectors._replay import ReadReport, read_outcomes

    report = ReadReport()
    outcomes = list(read_outcomes(str(project / "driftwatch-outcomes.jsonl"), report))
    assert not report.errors and [o.success for o in outcomes] == [False, True]
    assert outcomes[1].score == 1.0


def test_does_nothing_without_the_flag(tmp_path: Path) -> None:
    """Without --driftwatch the plugin writes nothing and prints nothing."""
    project = make_project(tmp_path / "calc")
    proc = run_pytest(project)
    assert proc.returncode == 1 and "driftwatch" not in proc.stdout
    assert not (project / "driftwatch-outcomes.jsonl").exists()


def test_a_write_error_is_a_warning_not_a_failed_run(tmp_path: Path) -> None:
    """An unwritable outcome path is reported on the terminal; the suite's own exit code is kept."""
    project = make_project(tmp_path / "calc")
    (project / "test_small.py").write_text("def test_ok():\n    pass\n")
    proc = run_pytest(project, "--driftwatch", f"--driftwatch-out={tmp_path / 'no' / 'such' / 'x.jsonl'}")
    assert proc.returncode == 0
    assert "driftwatch: could not record this run: FileNotFoundError" in proc.stdout


def test_sends_the_outcome_to_the_in_process_monitor(tmp_path: Path, harness: Harness) -> None:
    """--driftwatch-monitor hands the run's outcome to the configured in-process monitor."""
    project = make_project(tmp_path / "inproc")
    out = tmp_path / "o.jsonl"
    code = pytest.main(
        [
            str(project),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(project),
            "-c",
            str(project / "pytest.ini"),
            "--driftwatch",
            "--driftwatch-monitor",
            f"--driftwatch-out={out}",
        ]
    )
    assert code == 1
    (outcome,) = harness.flush()
    assert outcome.task == "inproc" and outcome.success is False and outcome.score == pytest.approx(0.6)
    assert outcome.service == "test-agent" and out.exists()


def test_loading_the_plugin_stays_cheap() -> None:
    """Every pytest run imports the plugin: that must not import the anthropic SDK or the monitor."""
    code = (
        "import sys, driftwatch.pytest_plugin; "
        "print(sorted(m for m in ('anthropic', 'driftwatch._monitor', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
