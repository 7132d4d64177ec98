"""`driftwatch bench run`: the example suite end to end offline, adaptive sampling, resume, bad suites."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from driftwatch._cli.main import main
from driftwatch._config import load_config
from driftwatch._offline.bench import BenchError, load_suite, run_suite
from driftwatch._offline.fake_api import FakeMessagesAPI
from tests.support.notify_servers import FakeService
from tests.support.otlp_receiver import OTLPReceiver

ROOT = Path(__file__).resolve().parents[3]
SUITE = ROOT / "examples" / "bench" / "suite.yaml"
_spec = importlib.util.spec_from_file_location(
    "bench_scripted_agent", ROOT / "examples" / "bench" / "agent.py"
)
assert _spec is not None and _spec.loader is not None
SCRIPTED = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SCRIPTED)

# Detection settings for a test-sized history. The default warm-up (500 observations per stream)
# and lag (300) need weeks of a real daily canary before the first alarm can fire; 10 of each (the
# detector's minimum warm-up) let 12 healthy runs per task be the baseline, which keeps this fast.
# Only `success` is watched: latency on a shared CI machine moves with its load, which is not what
# these tests are about.
SMALL = "warmup: 10\nlag: 10\nconfirm_min: 10\nsignals: [success]\n"


def outcomes_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def bench(tmp_path: Path, *args: str, suite: Path = SUITE) -> int:
    config = tmp_path / "detect.yaml"
    if not config.exists():
        config.write_text(SMALL)
    return main(
        [
            "bench",
            "run",
            str(suite),
            "--outcomes",
            str(tmp_path / "out.jsonl"),
            "--config",
            str(config),
            *args,
        ]
    )


def test_example_suite_runs_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The example suite with its scripted agent records one outcome per task run, with task_id, labels,
    model, tokens and latency, and a progress line for each."""
    assert bench(tmp_path, "--run-id", "r1", "--repetitions", "2") == 0
    rows = outcomes_of(tmp_path / "out.jsonl")
    assert sorted(r["task_id"] for r in rows) == sorted(
        f"{t}#{i}" for t in ("add", "fizzbuzz", "reverse", "vowels") for i in (1, 2)
    )
    first = rows[0]
    assert first["labels"]["category"] == "arithmetic"
    assert first["labels"]["bench.suite"] == "example"
    assert first["labels"]["bench.run"] == "r1"
    assert first["model"] == "scripted-agent-1"
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0 and first["latency_s"] > 0
    assert sum(r["success"] for r in rows) >= 6  # 5% random failures
    progress = (tmp_path / "out.jsonl.progress").read_text().splitlines()
    assert len(progress) == 1 + 8
    assert "bench example run r1: 8 task runs" in capsys.readouterr().out


def test_same_run_id_twice_runs_nothing_more(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Running a finished run again (a cron job re-run the same day) adds no outcomes and says so."""
    assert bench(tmp_path, "--run-id", "day", "--repetitions", "1") == 0
    assert bench(tmp_path, "--run-id", "day", "--repetitions", "1") == 0
    assert len(outcomes_of(tmp_path / "out.jsonl")) == 4
    out = capsys.readouterr().out
    assert "resuming run day: 4 of 4 task runs already done" in out
    assert "0 task runs (nothing left to run), 4 already done" in out


def test_degraded_category_is_sampled_more_then_confirmed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the scripted agent degrades on 'strings', the run after the suspicion samples only that
    category more (up to the budget), says why, and the suspicion is confirmed in that run (exit 1) and
    paged to the config's notifier."""
    assert bench(tmp_path, "--run-id", "healthy", "--repetitions", "12", "--budget", "48") == 0
    capsys.readouterr()
    monkeypatch.setenv("BENCH_AGENT_DEGRADE", "strings:0.9")
    suspected_after = None
    for day in range(1, 6):
        bench(tmp_path, "--run-id", f"bad{day}", "--budget", "32")
        out = capsys.readouterr().out
        assert "adaptive:" not in out
        if "[suspected]" in out:
            suspected_after = day
            break
    assert suspected_after is not None, "no suspicion after 5 degraded runs"
    assert "task=reverse" in out or "task=vowels" in out
    hook = FakeService("webhook")  # the config's notifier gets the run's new confirmed alert
    config = tmp_path / "detect.yaml"
    config.write_text(config.read_text() + f"notifiers:\n  - {{type: webhook, url: '{hook.url}'}}\n")
    try:
        code = bench(
            tmp_path, "--run-id", "adaptive", "--budget", "32", "--alerts-out", str(tmp_path / "a.jsonl")
        )
    finally:
        hook.close()
    out = capsys.readouterr().out
    paged = hook.bodies()
    assert {(a["status"], a["signal"]) for a in paged} == {("confirmed", "success")}
    assert "paging: alerts also go to webhook" in out and f"{len(paged)} sent, 0 retried, 0 failed" in out
    confirmed = {line.split("task=")[1].split(":")[0] for line in out.splitlines() if "[confirmed]" in line}
    assert sorted(a["stream"]["task"] for a in paged) == sorted(confirmed)  # one page per task (cause)
    assert "adaptive: category 'strings' is suspected" in out
    assert "sampling 20 more runs of its 2 task(s)" in out
    rows = [r for r in outcomes_of(tmp_path / "out.jsonl") if r["labels"]["bench.run"] == "adaptive"]
    per_task = {t: sum(r["task"] == t for r in rows) for t in ("add", "fizzbuzz", "reverse", "vowels")}
    assert per_task == {"add": 3, "fizzbuzz": 3, "reverse": 13, "vowels": 13}
    assert "[confirmed]" in out and "success down" in out
    assert code == 1  # --fail-on confirmed is the default: a CI canary goes red
    assert "task=add" not in out and "task=fizzbuzz" not in out
    written = outcomes_of(tmp_path / "a.jsonl")
    assert any(a["status"] == "confirmed" and a["stream"]["task"] in ("reverse", "vowels") for a in written)


def test_interrupted_run_resumes_without_duplicates(tmp_path: Path) -> None:
    """A run stopped by Ctrl-C after 5 task runs resumes with the same plan and runs only the other 7."""
    suite = load_suite(SUITE)
    config = load_config(None, env={})
    state = {"calls": 0, "stop_at": 5}

    def solve(prompt: str, workdir: Path, task: Any) -> dict[str, Any]:
        if state["calls"] == state["stop_at"]:
            raise KeyboardInterrupt
        state["calls"] += 1
        (workdir / "solution.py").write_text(SCRIPTED.RIGHT[task["DRIFTWATCH_BENCH_TASK"]])
        return {"output_tokens": 5}

    module = types.ModuleType("bench_test_agent")
    module.solve = solve  # type: ignore[attr-defined]
    sys.modules["bench_test_agent"] = module
    kwargs: dict[str, Any] = dict(
        outcomes_path=tmp_path / "o.jsonl",
        progress_path=tmp_path / "p",
        run_id="r",
        config=config,
        agent_callable="bench_test_agent:solve",
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            run_suite(suite, **kwargs)
        assert len(outcomes_of(tmp_path / "o.jsonl")) == 5
        state["stop_at"] = -1
        report = run_suite(suite, **kwargs)
    finally:
        del sys.modules["bench_test_agent"]
    assert (report.skipped, report.ran, report.passed) == (5, 7, 7)
    ids = [r["task_id"] for r in outcomes_of(tmp_path / "o.jsonl")]
    assert len(ids) == len(set(ids)) == 12


def test_outcome_without_progress_line_counts_as_done(tmp_path: Path) -> None:
    """A kill between writing an outcome and its progress line does not run that task again."""
    assert bench(tmp_path, "--run-id", "r", "--repetitions", "1") == 0
    progress = tmp_path / "out.jsonl.progress"
    lines = progress.read_text().splitlines()
    progress.write_text("\n".join(lines[:-1]) + '\n{"suite": "cut sh')  # last line lost, one torn
    assert bench(tmp_path, "--run-id", "r", "--repetitions", "1") == 0
    assert len(outcomes_of(tmp_path / "out.jsonl")) == 4


def write_suite(tmp_path: Path, text: str) -> Path:
    (tmp_path / "setup").mkdir(exist_ok=True)
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


GOOD_TASK = "  - name: t\n    prompt: p\n    check: 'true'\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: s\nagent: x\ntask:\n" + GOOD_TASK, "suite.yaml:3: unknown key 'task'; valid keys are: name,"),
        ("agent: x\ntasks:\n" + GOOD_TASK, "suite.yaml:1: key 'name' is required"),
        ("name: s s\ntasks:\n" + GOOD_TASK, "suite.yaml:1: key 'name': expected 1-64 letters"),
        (
            "name: s\nrepetitions: 0\ntasks:\n" + GOOD_TASK,
            "suite.yaml:2: key 'repetitions': expected a whole",
        ),
        ("name: s\ntasks: []\n", "suite.yaml:2: key 'tasks': expected a non-empty list"),
        ("name: s\ntasks:\n  - name: t\n    check: 'true'\n", "suite.yaml:3: task key 'prompt' is required"),
        ("name: s\ntasks:\n" + GOOD_TASK + GOOD_TASK, "suite.yaml:6: task name 't' is used twice"),
        ("name: s\ntasks:\n" + GOOD_TASK + "    setup: nowhere\n", "suite.yaml:6: key 'setup': folder"),
        (
            "name: s\ntasks:\n" + GOOD_TASK + "    timeout_s: -1\n",
            "suite.yaml:6: key 'timeout_s': expected a",
        ),
        ("name: s\ntasks:\n" + GOOD_TASK + "    cheque: x\n", "suite.yaml:6: unknown task key 'cheque'"),
        ("name: s\nagent_callable: nocolon\ntasks:\n" + GOOD_TASK, "suite.yaml:2: key 'agent_callable'"),
        ("name: [s\n", "suite.yaml:2: not valid YAML"),
    ],
)
def test_bad_suite_names_file_line_and_valid_form(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake in a suite file is reported as file:line with the key and the valid form."""
    with pytest.raises(BenchError) as info:
        load_suite(write_suite(tmp_path, text))
    assert expected in str(info.value)


def test_bad_suite_exits_2_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints a bad suite's error and exits 2 without running anything."""
    suite = write_suite(tmp_path, "name: s\ntasks: 3\n")
    assert bench(tmp_path, suite=suite) == 2
    assert "suite.yaml:2: key 'tasks'" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_no_agent_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A suite without an agent and no --agent exits 2 naming both ways to give one."""
    suite = write_suite(tmp_path, "name: s\ntasks:\n" + GOOD_TASK)
    assert bench(tmp_path, suite=suite) == 2
    assert "--agent / --agent-callable" in capsys.readouterr().err


def test_timeout_crash_and_bad_report_are_outcomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An agent that hangs is killed at timeout_s and fails; a crashing agent still gets its check run;
    a bad token report is warned about and ignored; the rest of the suite keeps running."""
    suite = write_suite(
        tmp_path,
        "name: s\ntimeout_s: 0.5\ntasks:\n"
        "  - name: hang\n    prompt: p\n    check: 'true'\n    timeout_s: 0.3\n"
        "  - name: crash\n    prompt: p\n    check: 'true'\n"
        "  - name: fine\n    prompt: p\n    check: 'test -f done'\n",
    )
    agent = (
        'case "$DRIFTWATCH_BENCH_TASK" in hang) sleep 30;; crash) exit 3;; '
        'fine) cat > done; echo \'{"output_tokens": -4, "input_tokens": 7}\';; esac'
    )
    assert bench(tmp_path, "--run-id", "r", "--repetitions", "1", "--agent", agent, suite=suite) == 0
    rows = {r["task"]: r for r in outcomes_of(tmp_path / "out.jsonl")}
    assert rows["hang"]["success"] is False and rows["hang"]["error_type"] == "timeout"
    assert rows["hang"]["latency_s"] < 5
    assert rows["crash"]["success"] is True and rows["crash"]["error_type"] == "agent_exit_3"
    assert rows["fine"]["success"] is True and rows["fine"]["input_tokens"] == 7
    assert "output_tokens" not in rows["fine"]
    err = capsys.readouterr().err
    assert "s hang#1: the agent timed out after 0.3 s" in err
    assert "s fine#1: reported 'output_tokens' must be a whole number >= 0, got -4; ignored" in err


def test_anthropic_agent_example_through_the_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Anthropic SDK example agent runs as a callable against a local fake API: one outcome per
    task run with the model and tokens from the API's responses (the fake's text fails the checks)."""
    pytest.importorskip("anthropic")
    with FakeMessagesAPI() as api:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("BENCH_MODEL", "claude-sonnet-4-6")
        code = bench(
            tmp_path, "--run-id", "r", "--repetitions", "1", "--agent-callable", "anthropic_agent.py:solve"
        )
        assert api.requests == 4
    assert code == 0
    rows = outcomes_of(tmp_path / "out.jsonl")
    assert [r["model"] for r in rows] == ["claude-sonnet-4-6"] * 4
    assert all(r["output_tokens"] == 64 and r["input_tokens"] > 0 for r in rows)
    assert not any(r["success"] for r in rows)


def test_runs_exported_as_spans_over_otlp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, every task run also leaves as an `invoke_agent` span."""
    with OTLPReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        assert bench(tmp_path, "--run-id", "r", "--repetitions", "1") == 0
    assert {"invoke_agent add", "invoke_agent fizzbuzz", "invoke_agent reverse", "invoke_agent vowels"} <= (
        receiver.span_names()
    )


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """A terminal on stderr gets a progress bar ending at N/N; a pipe or file gets none."""
    suite = load_suite(SUITE)
    config = load_config(None, env={})
    for err, run in ((_Tty(), "a"), (io.StringIO(), "b")):
        run_suite(
            suite,
            outcomes_path=tmp_path / "o.jsonl",
            progress_path=tmp_path / "p",
            run_id=run,
            config=config,
            repetitions=1,
            out=io.StringIO(),
            err=err,
        )
        text = err.getvalue()
        if isinstance(err, _Tty):
            assert "] 4/4 (" in text and text.endswith("\n")
        else:
            assert text == ""


def test_bench_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`driftwatch bench run --help` shows an example command line."""
    with pytest.raises(SystemExit):
        main(["bench", "run", "--help"])
    assert "driftwatch bench run examples/bench/suite.yaml" in capsys.readouterr().out


def test_example_checks_fail_on_a_wrong_solution(tmp_path: Path) -> None:
    """The example tasks' checks reject the scripted agent's wrong answers (a check that cannot fail
    would make every benchmark pass)."""
    for task, code in SCRIPTED.WRONG.items():
        work = tmp_path / task
        shutil.copytree(ROOT / "examples" / "bench" / "tasks" / task, work)
        (work / "solution.py").write_text(code)
        assert subprocess.run([sys.executable, "check.py"], cwd=work, capture_output=True).returncode != 0, (
            task
        )
        (work / "solution.py").write_text(SCRIPTED.RIGHT[task])
        assert subprocess.run([sys.executable, "check.py"], cwd=work, capture_output=True).returncode == 0, (
            task
        )
