"""driftwatch's telemetry schema: every ``driftwatch.*`` attribute, metric, unit and bucket, once.

The writing side (the task span in ``collectors/_task.py``, the call span in
``collectors/_anthropic.py`` and ``collectors/_spans.py``, the alert log record and metrics in
``driftwatch/_alerting/otel.py`` and ``prometheus.py``) and the reading side (``driftwatch serve``'s
decoder, ``collectors/_otlp_genai.py``) name them from here, so the two cannot drift apart. The
names are a contract with dashboards, alert rules and other collectors: renaming one is a breaking
change. GenAI semantic-convention names (``gen_ai.*``) are upstream's and stay where they are read.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ALERTS",
    "ALERT_ID",
    "ALERT_KIND",
    "ALERT_STATUS",
    "BASELINE_MEAN",
    "BASELINE_N",
    "CALL_COST_USD",
    "CALL_ERROR_TYPE",
    "CALL_LATENCY_S",
    "CALL_TOOL_CALLS",
    "CALL_TTFT_S",
    "CURRENT_MEAN",
    "CURRENT_N",
    "DELAY",
    "DIRECTION",
    "DRIFT_ACTIVE",
    "DRIFT_CONFIRMED",
    "DRIFT_EVENT",
    "EFFECT",
    "FOLLOWING",
    "LATENCY_BUCKETS",
    "METRICS",
    "OUTCOMES",
    "OUTCOME_COST",
    "OUTCOME_KIND",
    "OUTCOME_LATENCY",
    "OUTCOME_RESULTS",
    "OUTCOME_TOKENS",
    "P_VALUE",
    "RESULT",
    "SCOPE_NAME",
    "SIGNAL",
    "STREAM_END",
    "STREAM_KEY",
    "STREAM_LABEL",
    "TASK_API_ERRORS",
    "TASK_API_LATENCY_S",
    "TASK_COST_USD",
    "TASK_ID",
    "TASK_LABEL",
    "TASK_LATENCY_S",
    "TASK_NAME",
    "TASK_PERMISSION_DENIALS",
    "TASK_READS_PER_EDIT",
    "TASK_RETRIES",
    "TASK_SCORE",
    "TASK_STOP_REASON",
    "TASK_SUBAGENT_TOOL_USES",
    "TASK_SUCCESS",
    "TASK_THINKING_TOKENS",
    "TASK_TOOL_CALLS",
    "TASK_TOOL_ERRORS",
    "TASK_TOOL_ERROR_RATE",
    "TASK_TOOL_USES",
    "TASK_TTFT_S",
    "TASK_TURNS",
    "TOKEN_TYPE",
    "Metric",
]

#: The instrumentation scope of every span, log record and metric driftwatch emits.
SCOPE_NAME = "driftwatch"

# -- the task span (``invoke_agent {task}``): everything of a task outcome, read back by serve -----
TASK_NAME = "driftwatch.task.name"
TASK_ID = "driftwatch.task.id"
#: ``driftwatch.task.label.<label>``: the task's labels (also set on its call spans).
TASK_LABEL = "driftwatch.task.label."
TASK_SUCCESS = "driftwatch.task.success"
TASK_SCORE = "driftwatch.task.score"
TASK_LATENCY_S = "driftwatch.task.latency_s"
TASK_TTFT_S = "driftwatch.task.ttft_s"
TASK_COST_USD = "driftwatch.task.cost_usd"
TASK_TOOL_CALLS = "driftwatch.task.tool_calls"
TASK_TOOL_ERRORS = "driftwatch.task.tool_errors"
TASK_API_ERRORS = "driftwatch.task.api_errors"
TASK_STOP_REASON = "driftwatch.task.stop_reason"
# The behavioural signals of an agent run (``driftwatch.agent_run``, docs/agents.md).
TASK_TURNS = "driftwatch.task.turns"
TASK_THINKING_TOKENS = "driftwatch.task.thinking_tokens"
TASK_RETRIES = "driftwatch.task.retries"
TASK_PERMISSION_DENIALS = "driftwatch.task.permission_denials"
TASK_API_LATENCY_S = "driftwatch.task.api_latency_s"
TASK_READS_PER_EDIT = "driftwatch.task.reads_per_edit"
TASK_TOOL_ERROR_RATE = "driftwatch.task.tool_error_rate"
#: ``driftwatch.task.tool_uses.<tool>``: tool uses by tool name (the main agent's and its subagents').
TASK_TOOL_USES = "driftwatch.task.tool_uses."
#: ``driftwatch.task.subagent_tool_uses.<subagent type>``: tool uses made inside subagents.
TASK_SUBAGENT_TOOL_USES = "driftwatch.task.subagent_tool_uses."

# -- the call span (``chat {model}`` or the SDK's own span, annotated) -----------------------------
CALL_LATENCY_S = "driftwatch.latency_s"
CALL_TTFT_S = "driftwatch.ttft_s"
CALL_ERROR_TYPE = "driftwatch.error_type"
CALL_TOOL_CALLS = "driftwatch.tool_calls"
CALL_COST_USD = "driftwatch.cost_usd"
#: How a streamed call ended early (``stream_end`` label), e.g. ``abandoned``.
STREAM_END = "driftwatch.stream.end"
#: The stream an outcome or alert belongs to, as ``service=…;task=…``: informative, never read back.
STREAM_KEY = "driftwatch.stream_key"

# -- the alert log record (event ``driftwatch.drift``) ------------------------------------------------
DRIFT_EVENT = "driftwatch.drift"
ALERT_ID = "driftwatch.alert.id"
#: Also the attribute (label ``driftwatch_alert_kind``) for an alert's kind on ``driftwatch.alerts``:
#: not ``kind``, which is the stream's own label on call streams (``kind="call"``).
ALERT_KIND = "driftwatch.alert.kind"
ALERT_STATUS = "driftwatch.alert.status"
SIGNAL = "driftwatch.signal"
DIRECTION = "driftwatch.direction"
BASELINE_MEAN = "driftwatch.baseline.mean"
BASELINE_N = "driftwatch.baseline.n"
CURRENT_MEAN = "driftwatch.current.mean"
CURRENT_N = "driftwatch.current.n"
EFFECT = "driftwatch.effect"
DELAY = "driftwatch.delay"
P_VALUE = "driftwatch.p_value"
#: ``driftwatch.stream.<label>``: each of the alert's stream labels.
STREAM_LABEL = "driftwatch.stream."

# -- metric attributes ----------------------------------------------------------------------------
OUTCOME_KIND = "driftwatch.outcome.kind"
RESULT = "driftwatch.result"
TOKEN_TYPE = "gen_ai.token.type"


# -- metrics (the OTLP sink and the Prometheus scrape expose the same) --------------------------------
class Metric(NamedTuple):
    name: str
    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    description: str
    unit: str = ""


ALERTS = Metric("driftwatch.alerts", "counter", "Drift alerts raised, by status")
OUTCOMES = Metric("driftwatch.outcomes", "counter", "Outcomes observed")
DRIFT_ACTIVE = Metric(
    "driftwatch.drift.active", "gauge", "1 while a stream and signal has an open drift alert"
)
DRIFT_CONFIRMED = Metric(
    "driftwatch.drift.confirmed", "gauge", "1 while a stream and signal has an open confirmed drift alert"
)
OUTCOME_RESULTS = Metric("driftwatch.outcome.results", "counter", "Outcomes with a pass/fail result")
OUTCOME_LATENCY = Metric("driftwatch.outcome.latency", "histogram", "Outcome latency", "s")
OUTCOME_TOKENS = Metric("driftwatch.outcome.tokens", "counter", "Tokens used, by type", "{token}")
OUTCOME_COST = Metric("driftwatch.outcome.cost", "counter", "Cost in USD at list prices", "{USD}")
METRICS = (
    ALERTS,
    OUTCOMES,
    DRIFT_ACTIVE,
    DRIFT_CONFIRMED,
    OUTCOME_RESULTS,
    OUTCOME_LATENCY,
    OUTCOME_TOKENS,
    OUTCOME_COST,
)

#: Upper bounds (seconds) of the latency histogram; agent tasks run from sub-second calls to many minutes.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
#: The statuses a drift episode can still reach from each status. Their ``driftwatch.alerts`` series
#: are created at 0 as soon as the episode opens: a counter series that first appears at 1 is invisible
#: to ``increase()`` and ``rate()``, which need a sample before the step.
FOLLOWING: dict[str, tuple[str, ...]] = {"suspected": ("confirmed", "resolved"), "confirmed": ("resolved",)}
