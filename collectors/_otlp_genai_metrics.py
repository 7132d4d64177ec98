"""GenAI token metrics in OTLP: ``gen_ai.client.token.usage`` and the newer per-operation histograms
``gen_ai.client.inference.operation.input_tokens`` / ``.output_tokens``.

A metric point is an aggregate over an export interval, not one call: each series (service,
provider, operation, model) gives one call-kind outcome per interval whose ``input_tokens`` and
``output_tokens`` are the interval's mean per operation (histogram ``sum / count``), in its own
stream (task ``{provider}.{operation}.metrics``): its values are means, which must not mix with
the per-call values of the same instrumentation's spans. Cumulative points are differenced against
the series' previous point (kept, bounded, in ``series``); delta points are taken as they are.

The ``gen_ai.client.inference.usage.*`` counters are totals without an operation count (cost
proxies, by the conventions' own account), so they give no per-operation value and are not read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from driftwatch._config import Config
from driftwatch._outcome import Outcome
from driftwatch.collectors._otlp_values import (
    Bad,
    event_time,
    model_and_labels,
    stream_labels,
    text,
)

__all__ = ["MAX_SERIES", "TOKEN_HISTOGRAMS", "GenAiMetrics"]

#: Histogram name → which token count it holds (None: by the point's ``gen_ai.token.type``).
TOKEN_HISTOGRAMS: dict[str, str | None] = {
    "gen_ai.client.token.usage": None,
    "gen_ai.client.inference.operation.input_tokens": "input",
    "gen_ai.client.inference.operation.output_tokens": "output",
}
#: Cumulative series remembered for differencing; the oldest is forgotten beyond this.
MAX_SERIES = 10_000
CUMULATIVE = 2  # opentelemetry.proto.metrics.v1.AggregationTemporality
_MAX_TOKENS = 1e12


class GenAiMetrics:
    """GenAI token histograms → per-interval call outcomes, with the cumulative series' last points."""

    def __init__(self, config: Config) -> None:
        self.config = config
        #: Series key → (start time, count, sum) of its last cumulative point.
        self.series: dict[str, tuple[int, int, float]] = {}
        #: The outcomes of the request being decoded, by series (without the token type) and time.
        self._pending: dict[tuple[str, int], Outcome] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "series": self.series}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pending = {}

    def point(
        self,
        name: str,
        temporality: int,
        point: Any,
        attrs: Mapping[str, Any],
        res: Mapping[str, Any],
        service: str,
        where: str,
    ) -> None:
        """Read one histogram point; its outcome is completed by ``take`` at the request's end."""
        which = TOKEN_HISTOGRAMS[name] or text(attrs, "gen_ai.token.type")
        if which not in ("input", "output"):
            return  # another token type (or none): not watched
        t = event_time(point.time_unix_nano, 0, where)
        count, total = int(point.count), float(point.sum)
        if not math.isfinite(total) or not 0 <= total <= _MAX_TOKENS:
            raise Bad(
                f"{where}: metric '{name}' sum {total!r} is out of range; expected a token count 0 to 1e12"
            )
        provider = (text(attrs, "gen_ai.provider.name") or text(attrs, "gen_ai.system") or "gen_ai").lower()
        operation = text(attrs, "gen_ai.operation.name") or "chat"
        model, model_labels = model_and_labels(
            text(attrs, "gen_ai.response.model") or text(attrs, "gen_ai.request.model")
        )
        series = "|".join(
            [service, provider, operation, model or "", text(attrs, "server.address") or ""]
            + [f"{k}={v}" for k, v in sorted(model_labels.items())]
        )
        key = f"{name}|{which}|{series}"
        if temporality == CUMULATIVE:
            before = self.series.pop(key, None)
            self.series[key] = (int(point.start_time_unix_nano), count, total)
            while len(self.series) > MAX_SERIES:
                del self.series[next(iter(self.series))]
            if before is not None and before[0] == point.start_time_unix_nano and before[1] <= count:
                count, total = count - before[1], max(0.0, total - before[2])
        if count <= 0:
            return
        outcome = self._pending.get((series, point.time_unix_nano))
        if outcome is None:
            labels = stream_labels(self.config.stream_labels, attrs, res)
            labels.update(model_labels)
            labels["provider"] = provider
            outcome = Outcome(
                task=f"{provider}.{operation}.metrics",
                time=t,
                kind="call",
                service=service,
                model=model,
                labels=labels,
            )
            self._pending[(series, point.time_unix_nano)] = outcome
        mean = round(total / count)
        if which == "input":
            outcome.input_tokens = mean
        else:
            outcome.output_tokens = mean

    def take(self) -> list[Outcome]:
        """The outcomes of the points read since the last call."""
        out = list(self._pending.values())
        self._pending.clear()
        return out
