"""Outcomes from JUnit XML reports (pytest --junitxml, Maven Surefire, Jest, go-junit-report...).

One outcome per ``<testsuite>``: pass rate as ``score``, ``success`` when nothing failed or
errored, the suite's ``time`` as ``latency_s``, counts and failing test ids as labels. Optionally
one outcome per ``<testcase>`` (task ``SUITE/tests``) with its id as ``task_id``, so that
``driftwatch compare`` pairs the same tests across two runs.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

from driftwatch._outcome import Outcome, OutcomeError, parse_time

__all__ = ["JunitReport", "read_junit"]

#: Failing test ids kept in a suite outcome's ``failed_tests`` label; the rest are only counted.
MAX_FAILED_IN_LABEL = 20


@dataclass
class JunitReport:
    """What reading found: files, suites and test cases read, and each problem as ``file:line: ...``."""

    files: int = 0
    suites: int = 0
    cases: int = 0
    errors: list[str] = field(default_factory=list)


def _number(element: ET.Element, name: str, where: str, report: JunitReport) -> float | None:
    raw = element.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        report.errors.append(
            f'{where}: attribute {name}={raw!r} is not a number; expected e.g. {name}="1.25"'
        )
        return None
    if value != value or value < 0:
        report.errors.append(f"{where}: attribute {name}={raw!r} must be a number >= 0")
        return None
    return value


def _status(case: ET.Element) -> str:
    """``passed``, ``failed`` (failure or error) or ``skipped``, from the child elements."""
    tags = {child.tag for child in case}
    # rerunFailure / flakyFailure (Surefire) record earlier attempts of a test that finally passed.
    if tags & {"failure", "error"}:
        return "failed"
    if "skipped" in tags:
        return "skipped"
    return "passed"


def _suites(root: ET.Element) -> list[ET.Element]:
    if root.tag == "testsuite":
        return [root]
    if root.tag == "testsuites":
        found = list(root.iter("testsuite"))
        # Suites nested in suites (some reporters): count only the innermost, which hold the cases.
        return [s for s in found if s.find("testsuite") is None]
    return []


def read_junit(
    path: str,
    report: JunitReport,
    *,
    task: str | None = None,
    per_test: bool = False,
    service: str = "unknown_service",
    default_time: float | None = None,
) -> Iterator[Outcome]:
    """Outcomes from one JUnit XML file; problems go to ``report.errors`` and the rest keeps flowing.

    ``task`` overrides the suite name as the outcome's task. The suite's ``timestamp`` is the event
    time; without one, ``default_time`` (else the file's modification time).
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        line, column = exc.position
        report.errors.append(
            f"{path}:{line}:{column + 1}: not well-formed XML ({str(exc).split(':')[0]}); expected a JUnit "
            'report such as <testsuite name="tests" tests="2"><testcase name="t1"/>...</testsuite>'
        )
        return
    except OSError as exc:
        report.errors.append(f"{path}: cannot read: {exc.strerror}")
        return
    report.files += 1
    root = tree.getroot()
    suites = _suites(root)
    if not suites:
        report.errors.append(
            f"{path}:1: root element <{root.tag}> is not a JUnit report; expected <testsuites> or <testsuite>"
        )
        return
    fallback = default_time if default_time is not None else os.path.getmtime(path)
    for number, suite in enumerate(suites, 1):
        name = suite.get("name") or root.get("name") or "junit"
        where = f"{path}: testsuite #{number} {name!r}"
        when = fallback
        stamp = suite.get("timestamp")
        if stamp:
            try:
                when = parse_time(stamp, f"{where}: attribute timestamp")
            except OutcomeError as exc:
                report.errors.append(f"{exc}; using the file's time instead")
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        failed: list[str] = []
        case_time = 0.0
        for case in suite.findall("testcase"):
            report.cases += 1
            status = _status(case)
            counts[status] += 1
            test_id = "::".join(p for p in (case.get("classname"), case.get("name")) if p) or "?"
            seconds = _number(case, "time", f"{where}: testcase {test_id!r}", report)
            case_time += seconds or 0.0
            if status == "failed":
                failed.append(test_id)
            if per_test and status != "skipped":
                # A stream of its own: test-level pass/fail mixed into the suite's stream would
                # make one stream of two different rates.
                yield Outcome(
                    task=f"{task or name}/tests",
                    time=when,
                    service=service,
                    task_id=test_id,
                    success=status == "passed",
                    latency_s=seconds if seconds else None,
                    labels={"source": "junit", "level": "test"},
                )
        ran = counts["passed"] + counts["failed"]
        report.suites += 1
        if ran == 0:
            report.errors.append(f"{where}: no test ran (all skipped or none listed); no outcome recorded")
            continue
        suite_time = _number(suite, "time", where, report)
        labels = {
            "source": "junit",
            "level": "suite",
            "tests": str(ran),
            "failed": str(counts["failed"]),
            "skipped": str(counts["skipped"]),
        }
        if failed:
            labels["failed_tests"] = " ".join(failed[:MAX_FAILED_IN_LABEL]) + (
                f" (+{len(failed) - MAX_FAILED_IN_LABEL} more)" if len(failed) > MAX_FAILED_IN_LABEL else ""
            )
        duration = suite_time if suite_time is not None else case_time
        yield Outcome(
            task=task or name,
            time=when,
            service=service,
            success=counts["failed"] == 0,
            score=counts["passed"] / ran,
            latency_s=duration if duration > 0 else None,
            labels=labels,
        )
