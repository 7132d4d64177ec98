"""driftwatch.task: context manager and decorator, sync and async, attaching calls."""

from __future__ import annotations

import pytest

import driftwatch
from tests.conftest import Harness


def tasks(harness: Harness) -> list[driftwatch.Outcome]:
    return [o for o in harness.flush() if o.kind == "task"]


def test_context_manager_records_outcome_and_span(harness: Harness) -> None:
    """A with-block task records success, score, labels and an `invoke_agent {task}` span."""
    with driftwatch.task("fix-tests", task_id="t-1", language="rust") as t:
        assert driftwatch.current_task() is t
        t.record(success=True, score=0.75)
    assert driftwatch.current_task() is None
    (outcome,) = tasks(harness)
    assert (outcome.task, outcome.task_id, outcome.success, outcome.score) == ("fix-tests", "t-1", True, 0.75)
    assert outcome.labels == {"language": "rust"} and outcome.service == "test-agent"
    (span,) = harness.spans.get_finished_spans()
    assert span.name == "invoke_agent fix-tests"
    attrs = span.attributes or {}
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["driftwatch.task.success"] is True and attrs["driftwatch.task.label.language"] == "rust"
    assert outcome.trace_id == format(span.context.trace_id, "032x")
    # One pre-joined routing key, for a Collector's load-balancing exporter (examples/collector/).
    assert attrs["driftwatch.stream_key"] == "service=test-agent;task=fix-tests"


def test_host_exception_propagates_and_marks_failure(harness: Harness) -> None:
    """An exception leaving the task propagates unchanged and records the task as failed."""
    error = ValueError("agent bug")
    with pytest.raises(ValueError) as info, driftwatch.task("fix-tests"):
        raise error
    assert info.value is error
    (outcome,) = tasks(harness)
    assert outcome.success is False and outcome.error_type == "ValueError"


def test_decorator_sync_each_call_is_a_task(harness: Harness) -> None:
    """A decorated function records one task per call, and current_task() works inside it."""

    @driftwatch.task("summarize")
    def run(ok: bool) -> str:
        t = driftwatch.current_task()
        assert t is not None
        t.record(success=ok)
        return "done"

    assert run(True) == "done" and run(False) == "done"
    assert [o.success for o in tasks(harness)] == [True, False]


async def test_decorator_async(harness: Harness) -> None:
    """An async decorated function is one task per call."""

    @driftwatch.task("async-job", tier="gold")
    async def run() -> int:
        t = driftwatch.current_task()
        assert t is not None
        t.record(success=True, tool_calls=3)
        return 4

    assert await run() == 4
    (outcome,) = tasks(harness)
    assert outcome.success is True and outcome.tool_calls == 3 and outcome.labels == {"tier": "gold"}


def test_unknown_record_keys_become_labels(harness: Harness) -> None:
    """record() keys that are not signals are kept as labels, never dropped silently."""
    with driftwatch.task("x") as t:
        t.record(success=True, branch="main")
    (outcome,) = tasks(harness)
    assert outcome.labels["branch"] == "main"
