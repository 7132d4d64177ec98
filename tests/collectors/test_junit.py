"""driftwatch ingest junit: real pytest JUnit XML to outcomes; bad XML named by file:line:column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch._cli.main import main
from driftwatch.collectors._junit import JunitReport, read_junit
from tests.driftwatch.test_pytest_plugin import FAILED, make_project


def junit_of_real_run(tmp_path: Path) -> Path:
    """A JUnit report written by a real pytest run of the small fixture project (3 pass, 2 fail, 2 skip)."""
    project = make_project(tmp_path / "calc")
    xml = tmp_path / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return xml


def test_ingests_a_real_pytest_junit_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One suite outcome (pass rate, success, time, failing ids) plus, with --per-test, one per test."""
    xml = junit_of_real_run(tmp_path)
    out = tmp_path / "junit.jsonl"
    assert (
        main(["ingest", "junit", str(xml), "--task", "agent-tests", "--per-test", "--outcomes-out", str(out)])
        == 0
    )
    records = [json.loads(line) for line in out.read_text().splitlines()]
    (suite,) = [r for r in records if r["labels"]["level"] == "suite"]
    assert suite["task"] == "agent-tests" and suite["success"] is False
    assert suite["score"] == pytest.approx(3 / 5) and suite["latency_s"] > 0
    assert (suite["labels"]["tests"], suite["labels"]["failed"], suite["labels"]["skipped"]) == (
        "5",
        "2",
        "2",
    )
    # pytest's JUnit ids are classname::name, classname being the module path with dots.
    assert set(suite["labels"]["failed_tests"].split()) == {
        f.replace("test_small.py::", "test_small::") for f in FAILED
    }
    tests = {r["task_id"]: r["success"] for r in records if r["labels"]["level"] == "test"}
    assert len(tests) == 5 and sum(tests.values()) == 3
    # Test-level outcomes are a stream of their own, apart from the suite's.
    assert {r["task"] for r in records if r["labels"]["level"] == "test"} == {"agent-tests/tests"}
    assert "ingested 1 of 1 JUnit files (1 suites, 7 test cases): 6 outcomes" in capsys.readouterr().out


def test_bad_xml_is_named_and_other_files_still_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated report is skipped with file:line:column and the valid form; the good file is read."""
    good = junit_of_real_run(tmp_path)
    bad = tmp_path / "bad.xml"
    bad.write_text('<?xml version="1.0"?>\n<testsuite name="x" tests="1">\n  <testcase name="a">\n')
    other = tmp_path / "other.xml"
    other.write_text("<html><body/></html>\n")
    assert main(["ingest", "junit", str(bad), str(other), str(good)]) == 0
    err = capsys.readouterr().err
    assert f"{bad}:4:1: not well-formed XML" in err and "<testsuite name=" in err
    assert f"{other}:1: root element <html> is not a JUnit report" in err
    assert main(["ingest", "junit", str(tmp_path / "missing.xml")]) == 2


def test_nested_suites_timestamps_and_bad_attributes(tmp_path: Path) -> None:
    """Innermost suites are read with their timestamps; a bad time attribute is reported and ignored."""
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite name="outer">'
        '<testsuite name="unit" timestamp="2026-03-01T10:00:00" time="1.5">'
        '<testcase classname="m" name="a" time="0.5"/><testcase classname="m" name="b" time="oops">'
        '<error message="boom"/></testcase></testsuite>'
        '<testsuite name="empty"><testcase name="s"><skipped/></testcase></testsuite>'
        "</testsuite></testsuites>"
    )
    report = JunitReport()
    (outcome,) = list(read_junit(str(xml), report))
    assert outcome.task == "unit" and outcome.score == 0.5 and outcome.latency_s == 1.5
    assert outcome.time == 1_772_359_200.0 and outcome.labels["failed_tests"] == "m::b"
    assert any("attribute time='oops' is not a number" in e for e in report.errors)
    assert any("'empty': no test ran" in e for e in report.errors)


def test_per_test_outcomes_pair_in_compare(tmp_path: Path) -> None:
    """Two JUnit runs of the same tests ingested --per-test are paired by test id in compare."""
    rows = []
    for run, broken in (("base", 2), ("cand", 14)):
        cases = "".join(
            f'<testcase classname="m" name="t{i}">' + ("<failure/>" if i < broken else "") + "</testcase>"
            for i in range(40)
        )
        path = tmp_path / f"{run}.xml"
        day = 1 if run == "base" else 2
        path.write_text(f'<testsuite name="s" timestamp="2026-03-0{day}T00:00:00">{cases}</testsuite>')
        out = tmp_path / f"{run}.jsonl"
        assert main(["ingest", "junit", str(path), "--per-test", "--outcomes-out", str(out)]) == 0
        rows.append(str(out))
    js = tmp_path / "c.json"
    assert (
        main(
            [
                "compare",
                *rows,
                "--baseline",
                "task=s/tests",
                "--candidate",
                "task=s/tests",
                "--json",
                str(js),
            ]
        )
        == 1
    )
    success = json.loads(js.read_text())["signals"][0]
    assert success["test"] == "mcnemar-exact" and success["paired"] and success["baseline"]["n"] == 40
