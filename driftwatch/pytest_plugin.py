"""pytest plugin: ``pytest --driftwatch`` records each run of the suite as one driftwatch outcome.

The outcome (outcome JSONL, the replay format): ``task`` (``--driftwatch-task``, default the
root folder's name), ``score`` = passed / (passed + failed), ``success`` = nothing failed or
errored, ``latency_s`` = the session's wall time, counts and the failing test ids as labels. The
failing test ids in full go to a side file (``--driftwatch-failures``). With
``--driftwatch-monitor`` the outcome also goes to the in-process monitor (``driftwatch.configure``
or the defaults), so alerts and OTLP export work as for any task.

Registered through the ``pytest11`` entry point; it does nothing unless ``--driftwatch`` is given,
and an error of its own is reported as a warning line, never as a failed test run.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]

#: Failing test ids kept in the outcome's ``failed_tests`` label (all of them go to the side file).
MAX_FAILED_IN_LABEL = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("driftwatch", "driftwatch: record each suite run as an outcome")
    group.addoption("--driftwatch", action="store_true", help="record this run as a driftwatch outcome")
    group.addoption(
        "--driftwatch-out",
        metavar="PATH",
        help="outcome JSONL file to append to (default driftwatch-outcomes.jsonl in the root folder)",
    )
    group.addoption("--driftwatch-task", metavar="NAME", help="task name (default: the root folder's name)")
    group.addoption(
        "--driftwatch-failures",
        metavar="PATH",
        help="also append {time, task, failed: [test ids]} as one JSON line to PATH",
    )
    group.addoption(
        "--driftwatch-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for the outcome, e.g. model=claude-sonnet-4-5 (repeatable)",
    )
    group.addoption(
        "--driftwatch-monitor",
        action="store_true",
        help="also send the outcome to the in-process driftwatch monitor (alerts, OTLP export)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist the controller sees every test's report: record there only, once.
    if config.getoption("driftwatch", False) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(config), "driftwatch-recorder")


class _Recorder:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.status: dict[str, str] = {}
        self.collect_errors: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(report.nodeid or "<collection>")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A test failed if any phase failed (setup, call, teardown); an xfail is a skip, not a fail.
        previous = self.status.get(report.nodeid)
        if report.failed:
            self.status[report.nodeid] = "failed"
        elif previous == "failed":
            return
        elif report.skipped:
            self.status[report.nodeid] = "skipped"
        elif report.when == "call":
            self.status[report.nodeid] = "passed"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        try:
            line = self._record(session, int(exitstatus))
        except Exception as exc:
            line = f"driftwatch: could not record this run: {type(exc).__name__}: {exc}"
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and line:
            reporter.write_line(line)

    def outcome(self) -> dict[str, Any] | None:
        from driftwatch._outcome import format_time

        failed = [k for k, v in self.status.items() if v == "failed"] + self.collect_errors
        passed = sum(1 for v in self.status.values() if v == "passed")
        skipped = sum(1 for v in self.status.values() if v == "skipped")
        ran = passed + len(failed)
        if ran == 0:
            return None
        labels = {"source": "pytest", "tests": str(ran), "failed": str(len(failed)), "skipped": str(skipped)}
        for item in self.config.getoption("driftwatch_label") or []:
            key, sep, value = str(item).partition("=")
            if not sep or not key:
                raise ValueError(f"--driftwatch-label {item!r}: expected KEY=VALUE such as model=claude-x")
            labels[key] = value
        if failed:
            labels["failed_tests"] = " ".join(failed[:MAX_FAILED_IN_LABEL]) + (
                f" (+{len(failed) - MAX_FAILED_IN_LABEL} more)" if len(failed) > MAX_FAILED_IN_LABEL else ""
            )
        record: dict[str, Any] = {
            "time": format_time(self.started),
            "task": self.config.getoption("driftwatch_task") or os.path.basename(str(self.config.rootpath)),
            "success": not failed,
            "score": passed / ran,
            "latency_s": round(time.perf_counter() - self.t0, 6),
            "labels": labels,
        }
        if "model" in labels:
            record["model"] = labels.pop("model")
        record["_failed"] = failed
        return record

    def _record(self, session: pytest.Session, exitstatus: int) -> str:
        record = self.outcome()
        if record is None:
            return "driftwatch: no test ran; nothing recorded"
        failed = record.pop("_failed")
        # pytest's exit code: 2 (interrupted) marks a partial run, whose pass rate is not the suite's.
        record["labels"]["exit_status"] = str(exitstatus)
        out = self.config.getoption("driftwatch_out") or os.path.join(
            str(self.config.rootpath), "driftwatch-outcomes.jsonl"
        )
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        side = self.config.getoption("driftwatch_failures")
        if side:
            with open(side, "a", encoding="utf-8") as fh:
                fh.write(
                    json.dumps({"time": record["time"], "task": record["task"], "failed": failed}) + "\n"
                )
        if self.config.getoption("driftwatch_monitor"):
            from driftwatch._outcome import parse_outcome
            from driftwatch._runtime import get_runtime

            runtime = get_runtime()
            if runtime is not None:
                runtime.monitor.process(parse_outcome(record, default_service=runtime.config.service))
        return (
            f"driftwatch: recorded {record['task']}: pass rate {record['score']:.1%} "
            f"({record['labels']['tests']} tests, {len(failed)} failed) to {out}"
        )
