"""``driftwatch bench run SUITE.yaml``: a fixed task suite run N times against an agent, as a canary.

Each task run happens in a fresh temporary directory: the task's setup files are copied in, the
agent (a shell command, prompt on stdin, or a Python callable) works there, then the check command
runs; success is the check's exit status 0. Every run becomes an outcome appended to the outcome
JSONL file (the ``driftwatch replay`` format) and, when ``OTEL_*`` asks for it, an ``invoke_agent``
span. A progress file keyed by (suite hash, run id, task, repetition) makes a run resumable.

Adaptive sampling: before a run, the outcome file's history goes through a ``Monitor``; a task
category with a stream whose latest alert is ``suspected`` gets extra repetitions (up to the run's
budget of task runs), because fresh observations are what turn a suspicion into a confirmation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from driftwatch._alerting.alerts import Alert, InMemorySink
from driftwatch._config import Config
from driftwatch._monitor import Monitor
from driftwatch._outcome import Outcome, format_time
from driftwatch.collectors._replay import ReadReport, read_outcomes

__all__ = ["BenchError", "BenchReport", "BenchTask", "Suite", "load_suite", "plan_run", "run_suite"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAME_FORM = "1-64 letters, digits, '.', '_' or '-', such as fix-tests"
#: Signals an agent may report on a JSON line of its stdout (or return from a callable).
_REPORTED_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "tool_calls")
_REPORTED_NUMBERS = ("cost_usd", "score")
#: Only the end of an agent's stdout is read for its JSON report: output stays on disk, not in memory.
_STDOUT_TAIL = 64 * 1024


class BenchError(ValueError):
    """A suite or run that cannot be used; the message names file, line and key and the valid form."""


@dataclass(frozen=True, slots=True)
class BenchTask:
    """One task of a suite."""

    name: str
    category: str
    prompt: str
    check: str
    setup: Path | None = None
    timeout_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Suite:
    """A validated suite file."""

    path: Path
    name: str
    tasks: tuple[BenchTask, ...]
    digest: str
    """Hash of the suite file and its setup files: a changed suite never resumes an old run."""
    agent: str | None = None
    agent_callable: str | None = None
    repetitions: int = 3
    model: str | None = None
    version: str | None = None


# -- the suite file ------------------------------------------------------------------------------

_SUITE_KEYS = ("name", "agent", "agent_callable", "repetitions", "timeout_s", "model", "version", "tasks")
_TASK_KEYS = ("name", "category", "prompt", "setup", "check", "timeout_s")


def _lines(node: yaml.MappingNode) -> dict[str, int]:
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _string(value: Any, where: str, key: str, form: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BenchError(f"{where}: key '{key}': expected {form}, got {value!r}")
    return value


def _positive(value: Any, where: str, key: str, whole: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if ok and whole and value != int(value):
        ok = False
    if not ok:
        form = "a whole number >= 1" if whole else "a number of seconds > 0"
        raise BenchError(f"{where}: key '{key}': expected {form}, got {value!r}")
    return float(value)


def _digest(text: bytes, tasks: list[BenchTask]) -> str:
    h = hashlib.sha256(text)
    for t in tasks:
        if t.setup is None:
            continue
        for path in sorted(p for p in t.setup.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(t.setup)).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """The suite in ``path``; raises BenchError naming ``file:line``, the key and the valid form."""
    where_file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise BenchError(f"{where_file}: cannot read the suite file: {exc.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise BenchError(
            f"{where_file}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise BenchError(
            f"{where_file}:1: expected a mapping with 'name', 'agent' and 'tasks' (docs/bench.md)"
        )
    lines = _lines(node)
    nodes = {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}

    def at(key: str) -> str:
        return f"{where_file}:{lines.get(key, 1)}"

    for key in data:
        if key not in _SUITE_KEYS:
            raise BenchError(f"{at(str(key))}: unknown key '{key}'; valid keys are: {', '.join(_SUITE_KEYS)}")
    if "name" not in data:
        raise BenchError(f"{where_file}:1: key 'name' is required: the suite's name, {_NAME_FORM}")
    name = _string(data["name"], at("name"), "name", _NAME_FORM)
    if not _NAME.match(name):
        raise BenchError(f"{at('name')}: key 'name': expected {_NAME_FORM}, got {name!r}")
    agent = data.get("agent")
    if agent is not None:
        agent = _string(agent, at("agent"), "agent", "a shell command such as 'python agent.py'")
    agent_callable = data.get("agent_callable")
    if agent_callable is not None:
        agent_callable = _string(
            agent_callable, at("agent_callable"), "agent_callable", "'module:function' or 'file.py:function'"
        )
        if ":" not in agent_callable:
            raise BenchError(
                f"{at('agent_callable')}: key 'agent_callable': expected 'module:function' or "
                f"'file.py:function', got {agent_callable!r}"
            )
    if agent is not None and agent_callable is not None:
        raise BenchError(f"{at('agent_callable')}: give either 'agent' or 'agent_callable', not both")
    repetitions = int(_positive(data.get("repetitions", 3), at("repetitions"), "repetitions", whole=True))
    timeout = _positive(data.get("timeout_s", 600), at("timeout_s"), "timeout_s", whole=False)
    markers: dict[str, str | None] = {}
    for key in ("model", "version"):
        value = data.get(key)
        markers[key] = None if value is None else _string(str(value), at(key), key, "a version string")
    tasks_node = nodes.get("tasks")
    raw_tasks = data.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks or not isinstance(tasks_node, yaml.SequenceNode):
        raise BenchError(
            f"{at('tasks')}: key 'tasks': expected a non-empty list of tasks, each with 'name', 'prompt' "
            f"and 'check', got {raw_tasks!r}"
        )
    base = Path(path).resolve().parent
    tasks: list[BenchTask] = []
    seen: set[str] = set()
    for item, item_node in zip(raw_tasks, tasks_node.value, strict=True):
        item_at = f"{where_file}:{item_node.start_mark.line + 1}"
        if not isinstance(item, dict) or not isinstance(item_node, yaml.MappingNode):
            raise BenchError(f"{item_at}: each task must be a mapping with 'name', 'prompt' and 'check'")
        item_lines = _lines(item_node)

        def tat(key: str, _lines: dict[str, int] = item_lines, _at: str = item_at) -> str:
            return f"{where_file}:{_lines[key]}" if key in _lines else _at

        for key in item:
            if key not in _TASK_KEYS:
                raise BenchError(
                    f"{tat(str(key))}: unknown task key '{key}'; valid keys are: {', '.join(_TASK_KEYS)}"
                )
        for key in ("name", "prompt", "check"):
            if key not in item:
                raise BenchError(f"{item_at}: task key '{key}' is required")
        tname = _string(item["name"], tat("name"), "name", _NAME_FORM)
        if not _NAME.match(tname):
            raise BenchError(f"{tat('name')}: key 'name': expected {_NAME_FORM}, got {tname!r}")
        if tname in seen:
            raise BenchError(f"{tat('name')}: task name {tname!r} is used twice; task names must be unique")
        seen.add(tname)
        category = _string(item.get("category", "default"), tat("category"), "category", _NAME_FORM)
        if not _NAME.match(category):
            raise BenchError(f"{tat('category')}: key 'category': expected {_NAME_FORM}, got {category!r}")
        prompt = _string(item["prompt"], tat("prompt"), "prompt", "the task's prompt text")
        check = _string(item["check"], tat("check"), "check", "a shell command such as 'pytest -q'")
        setup: Path | None = None
        if item.get("setup") is not None:
            rel = _string(item["setup"], tat("setup"), "setup", "a folder relative to the suite file")
            setup = (base / rel).resolve()
            if not setup.is_dir():
                raise BenchError(
                    f"{tat('setup')}: key 'setup': folder {str(setup)!r} does not exist; give a folder "
                    "relative to the suite file whose files are copied into each run's directory"
                )
        task_timeout = timeout
        if "timeout_s" in item:
            task_timeout = _positive(item["timeout_s"], tat("timeout_s"), "timeout_s", whole=False)
        tasks.append(BenchTask(tname, category, prompt, check, setup, task_timeout))
    return Suite(
        path=Path(path),
        name=name,
        tasks=tuple(tasks),
        digest=_digest(raw, tasks),
        agent=agent,
        agent_callable=agent_callable,
        repetitions=repetitions,
        model=markers["model"],
        version=markers["version"],
    )


# -- the agent -----------------------------------------------------------------------------------

AgentFn = Callable[[str, Path, Mapping[str, str]], Any]


def load_callable(spec: str, base: Path) -> AgentFn:
    """``module:function`` or ``file.py:function`` (relative to ``base``) as a callable."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            file = (base / target).resolve()
            module_spec = importlib.util.spec_from_file_location(f"driftwatch_bench_agent_{file.stem}", file)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(f"cannot load {file}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        fn = getattr(module, attr)
    except (ImportError, AttributeError, OSError, SyntaxError) as exc:
        raise BenchError(
            f"agent callable {spec!r}: cannot load it ({type(exc).__name__}: {exc}); expected "
            "'module:function' or 'file.py:function' with a function (prompt, workdir, task) -> dict | None"
        ) from None
    if not callable(fn):
        raise BenchError(f"agent callable {spec!r}: {attr!r} is not callable")
    result: AgentFn = fn
    return result


def _run_command(
    command: str, cwd: Path, env: Mapping[str, str], stdin: str, timeout: float, stdout: Path
) -> tuple[int | None, float]:
    """Exit status (None on timeout) and wall seconds; the whole process group dies on timeout."""
    start = time.perf_counter()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout kills the agent's children too
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

        # A timer instead of wait(timeout=...): that one polls with sleeps of up to 50 ms, which
        # doubled the time of a suite of quick tasks.
        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            with contextlib.suppress(BrokenPipeError):  # an agent that does not read its prompt
                assert proc.stdin is not None
                proc.stdin.write(stdin.encode())
                proc.stdin.close()
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted (Ctrl-C): leave no agent behind
                kill()
                proc.wait()
    return (None if timed_out.is_set() else proc.returncode), time.perf_counter() - start


def _reported(stdout: Path) -> dict[str, Any]:
    """The agent's report: the last line of its stdout that is a JSON object."""
    with stdout.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _STDOUT_TAIL))
        tail = fh.read().decode("utf-8", errors="replace")
    for line in reversed(tail.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def _apply_report(outcome: Outcome, report: Mapping[str, Any], where: str, warnings: list[str]) -> None:
    for key, value in report.items():
        if key in _REPORTED_COUNTS:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(outcome, key, value)
            else:
                warnings.append(
                    f"{where}: reported '{key}' must be a whole number >= 0, got {value!r}; ignored"
                )
        elif key in _REPORTED_NUMBERS:
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                setattr(outcome, key, float(value))
            else:
                warnings.append(f"{where}: reported '{key}' must be a number, got {value!r}; ignored")
        elif key == "model":
            if isinstance(value, str) and value:
                outcome.model = value
            else:
                warnings.append(f"{where}: reported 'model' must be a string, got {value!r}; ignored")


# -- planning ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Repetitions per task for one run, and why any task got more than the suite's count."""

    reps: dict[str, int]
    reasons: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.reps.values())


def detect(
    history: list[Outcome], config: Config, new: list[Outcome] | None = None
) -> tuple[list[Alert], list[Alert]]:
    """Detection over ``history`` then ``new`` in event time: the latest form of every drift alert,
    and every alert event (suspected, confirmed, resolved) raised while ``new`` went through."""
    memory = InMemorySink()
    monitor = Monitor(dataclasses.replace(config, console=False), [memory], threaded=False)
    for outcome in sorted(history, key=lambda o: o.time):
        monitor.process(outcome)
    mark = len(memory.alerts)
    for outcome in sorted(new or [], key=lambda o: o.time):
        monitor.process(outcome)
    monitor.shutdown()
    latest: dict[str, Alert] = {}
    for alert in memory.alerts:
        if alert.kind == "drift":
            latest[alert.id] = alert
    return list(latest.values()), memory.alerts[mark:]


def plan_run(suite: Suite, alerts: list[Alert], repetitions: int, budget: int) -> Plan:
    """Base ``repetitions`` per task, plus extra runs for categories with a ``suspected`` stream.

    The extra runs (``budget`` minus the base total) go round-robin to the tasks of the suspected
    categories: the confirmation test needs fresh observations after the alarm, so more samples of
    exactly those tasks confirm (or clear) the suspicion sooner.
    """
    plan = Plan({t.name: repetitions for t in suite.tasks})
    by_task = {t.name: t for t in suite.tasks}
    suspected: dict[str, list[Alert]] = {}
    for alert in alerts:
        task = by_task.get(alert.stream.get("task", ""))
        if alert.status == "suspected" and task is not None:
            suspected.setdefault(task.category, []).append(alert)
    if not suspected:
        return plan
    extra = budget - plan.total
    targets = [t.name for t in suite.tasks if t.category in suspected]
    for i in range(max(0, extra)):
        plan.reps[targets[i % len(targets)]] += 1
    for category, found in sorted(suspected.items()):
        names = [t for t in targets if by_task[t].category == category]
        added = sum(plan.reps[t] - repetitions for t in names)
        why = "; ".join(
            f"{a.stream.get('task')} {a.signal} {a.direction} since {format_time(a.change_at)} "
            f"(suspected at {format_time(a.detected_at)}, alert {a.id})"
            for a in found
        )
        if added:
            what = (
                f"sampling {added} more runs of its {len(names)} task(s) to confirm sooner (budget {budget})"
            )
        else:
            what = f"no extra runs: the budget ({budget}) is used up by the base {plan.total - added}"
        plan.reasons.append(f"category {category!r} is suspected: {why}; {what}")
    return plan


# -- running -------------------------------------------------------------------------------------


@dataclass
class BenchReport:
    """What a run did."""

    run_id: str
    planned: int = 0
    skipped: int = 0
    """Task runs already done by an earlier, interrupted invocation of the same run."""
    ran: int = 0
    passed: int = 0
    warnings: list[str] = field(default_factory=list)
    plan: Plan | None = None
    alerts: list[Alert] = field(default_factory=list)
    """Latest form of every drift alert over the whole history after the run."""
    new_alerts: list[Alert] = field(default_factory=list)
    """Every alert event raised on this run's outcomes, in order."""


def _read_progress(
    path: Path, digest: str, run_id: str
) -> tuple[dict[str, Any] | None, set[tuple[str, int]]]:
    plan: dict[str, Any] | None = None
    done: set[tuple[str, int]] = set()
    if not path.exists():
        return plan, done
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: the run it names is simply redone
            if not isinstance(rec, dict) or rec.get("suite") != digest or rec.get("run") != run_id:
                continue
            if isinstance(rec.get("plan"), dict):
                plan = rec
            elif isinstance(rec.get("task"), str) and isinstance(rec.get("rep"), int):
                done.add((rec["task"], rec["rep"]))
    return plan, done


def _append(path: Path, record: Mapping[str, Any]) -> None:
    # One write per line and fsync: a kill -9 loses at most the line being written.
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _progress(err: TextIO, run_id: str, done: int, total: int, passed: int) -> None:
    if not err.isatty() or total == 0:
        return
    width = 30
    filled = width * done // total
    err.write(f"\r  bench {run_id} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({passed} passed)")
    if done == total:
        err.write("\n")
    err.flush()


def _task_span(telemetry: Any, outcome: Outcome, start_s: float, end_s: float, config: Config) -> None:
    from opentelemetry.trace import SpanKind

    from driftwatch._monitor import stream_key
    from driftwatch.collectors._task import _span_attributes

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": outcome.task,
        "driftwatch.task.name": outcome.task,
        "driftwatch.task.id": outcome.task_id or "",
        "driftwatch.stream_key": stream_key(outcome, config.stream_labels),
        **_span_attributes(outcome),
    }
    span = telemetry.tracer.start_span(
        f"invoke_agent {outcome.task}",
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        start_time=int(start_s * 1e9),
    )
    span.end(end_time=int(end_s * 1e9))


def run_suite(
    suite: Suite,
    *,
    outcomes_path: Path,
    progress_path: Path,
    run_id: str,
    config: Config,
    repetitions: int | None = None,
    budget: int | None = None,
    agent: str | None = None,
    agent_callable: str | None = None,
    keep_workdirs: bool = False,
    telemetry: Any = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> BenchReport:
    """Run (or resume) run ``run_id`` of ``suite``; outcomes go to ``outcomes_path`` as they finish."""
    out = out or sys.stdout
    err = err or sys.stderr
    reps = repetitions or suite.repetitions
    budget = budget if budget is not None else 3 * reps * len(suite.tasks)
    command = agent if agent is not None else (None if agent_callable else suite.agent)
    spec = agent_callable if agent_callable is not None else (None if agent else suite.agent_callable)
    if command is None and spec is None:
        raise BenchError(
            f"{suite.path}: no agent: set 'agent' (a shell command) or 'agent_callable' (module:function) "
            "in the suite, or pass --agent / --agent-callable"
        )
    fn = load_callable(spec, suite.path.resolve().parent) if spec else None
    report = BenchReport(run_id)

    history: list[Outcome] = []
    read = ReadReport()
    if outcomes_path.exists():
        try:
            history = [
                o
                for o in read_outcomes(str(outcomes_path), read, default_service=config.service)
                if o.labels.get("bench.suite") == suite.name
            ]
        except OSError as exc:
            raise BenchError(f"{outcomes_path}: cannot read the outcome file: {exc.strerror}") from None
    for error in read.errors[:20]:
        report.warnings.append(f"skipped {error}")
    saved, done = _read_progress(progress_path, suite.digest, run_id)
    # An outcome written just before a kill, whose progress line was lost, still counts as done.
    for o in history:
        if o.labels.get("bench.run") == run_id and o.labels.get("bench.digest") == suite.digest and o.task_id:
            name, _, number = o.task_id.rpartition("#")
            if number.isdigit():
                done.add((name, int(number)))
    if saved is not None:
        # A resumed run keeps the plan it started with, so a resume never changes what is sampled.
        plan = Plan({k: int(v) for k, v in saved["plan"].items()}, list(saved.get("reasons", [])))
        print(f"resuming run {run_id}: {len(done)} of {plan.total} task runs already done", file=out)
    else:
        plan = plan_run(suite, detect(history, config)[0], reps, budget)
        _append(
            progress_path, {"suite": suite.digest, "run": run_id, "plan": plan.reps, "reasons": plan.reasons}
        )
    for reason in plan.reasons:
        print(f"adaptive: {reason}", file=out)
    report.plan = plan
    todo = [
        (t, rep)
        for t in suite.tasks
        for rep in range(1, plan.reps.get(t.name, 0) + 1)
        if (t.name, rep) not in done
    ]
    report.planned = plan.total
    report.skipped = plan.total - len(todo)
    # Interleave repetitions (rep 1 of every task, then rep 2, ...): an interrupted run still covers
    # every task, and extra runs of suspected tasks come last.
    todo.sort(key=lambda tr: tr[1])
    base_env = dict(os.environ)
    # Commands find the Python running driftwatch (a venv's, in CI) first as `python`.
    base_env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + base_env.get("PATH", "")
    new: list[Outcome] = []
    _progress(err, run_id, 0, len(todo), 0)
    for i, (task, rep) in enumerate(todo, 1):
        outcome = _run_one(
            suite, task, rep, run_id, command, fn, base_env, config, keep_workdirs, report, out
        )
        _append(outcomes_path, outcome.to_dict())
        _append(progress_path, {"suite": suite.digest, "run": run_id, "task": task.name, "rep": rep})
        if telemetry is not None:
            try:
                _task_span(
                    telemetry, outcome, outcome.time - (outcome.latency_s or 0.0), outcome.time, config
                )
            except Exception as exc:  # export must never stop the benchmark
                report.warnings.append(f"could not export the span of {outcome.task_id}: {exc}")
        new.append(outcome)
        report.ran += 1
        report.passed += bool(outcome.success)
        _progress(err, run_id, i, len(todo), report.passed)
    report.alerts, report.new_alerts = detect(history, config, new)
    return report


def _run_one(
    suite: Suite,
    task: BenchTask,
    rep: int,
    run_id: str,
    command: str | None,
    fn: AgentFn | None,
    base_env: Mapping[str, str],
    config: Config,
    keep: bool,
    report: BenchReport,
    out: TextIO,
) -> Outcome:
    task_id = f"{task.name}#{rep}"
    labels = {
        "category": task.category,
        "bench.suite": suite.name,
        "bench.run": run_id,
        "bench.digest": suite.digest,
    }
    if suite.version:
        labels["version"] = suite.version
    outcome = Outcome(task=task.name, kind="task", service=config.service, task_id=task_id, model=suite.model)
    outcome.labels = labels
    scratch = Path(tempfile.mkdtemp(prefix=f"driftwatch-bench-{task.name}-"))
    workdir = scratch / "work"
    try:
        if task.setup is not None:
            shutil.copytree(task.setup, workdir, symlinks=True)
        else:
            workdir.mkdir()
        env = {
            **base_env,
            "DRIFTWATCH_BENCH_SUITE": suite.name,
            "DRIFTWATCH_BENCH_SUITE_DIR": str(suite.path.resolve().parent),
            "DRIFTWATCH_BENCH_RUN": run_id,
            "DRIFTWATCH_BENCH_TASK": task.name,
            "DRIFTWATCH_BENCH_TASK_ID": task_id,
            "DRIFTWATCH_BENCH_CATEGORY": task.category,
            "DRIFTWATCH_BENCH_PROMPT": task.prompt,
            "DRIFTWATCH_BENCH_WORKDIR": str(workdir),
        }
        where = f"{suite.name} {task_id}"
        agent_ok = True
        if fn is not None:
            start = time.perf_counter()
            try:
                result = fn(
                    task.prompt, workdir, {k: env[k] for k in env if k.startswith("DRIFTWATCH_BENCH_")}
                )
            except Exception as exc:  # the agent's failure is this run's outcome, not the benchmark's end
                result = None
                agent_ok = False
                outcome.error_type = type(exc).__name__
                report.warnings.append(f"{where}: the agent raised {type(exc).__name__}: {exc}")
            outcome.latency_s = time.perf_counter() - start
            if isinstance(result, Mapping):
                _apply_report(outcome, result, where, report.warnings)
        else:
            assert command is not None
            rc, seconds = _run_command(
                command, workdir, env, task.prompt, task.timeout_s, scratch / "agent.out"
            )
            outcome.latency_s = seconds
            if rc is None:
                agent_ok = False
                outcome.error_type = "timeout"
                report.warnings.append(f"{where}: the agent timed out after {task.timeout_s:g} s (timeout_s)")
            elif rc != 0:
                outcome.error_type = f"agent_exit_{rc}"
            _apply_report(outcome, _reported(scratch / "agent.out"), where, report.warnings)
        if agent_ok:
            rc, _ = _run_command(task.check, workdir, env, "", task.timeout_s, scratch / "check.out")
            outcome.success = rc == 0
            if rc is None:
                outcome.error_type = outcome.error_type or "check_timeout"
                report.warnings.append(f"{where}: the check timed out after {task.timeout_s:g} s")
        else:
            outcome.success = False
    except OSError as exc:
        outcome.success = False
        outcome.error_type = type(exc).__name__
        report.warnings.append(f"{suite.name} {task_id}: could not run: {exc}")
    finally:
        if keep:
            print(f"  kept {scratch} ({task_id})", file=out)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    outcome.time = time.time()
    return outcome
