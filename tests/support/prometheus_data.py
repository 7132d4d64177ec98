"""A degrading agent run through a real Monitor and the Prometheus sink, and a small exposition parser."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from driftwatch import Config, Monitor, Outcome
from driftwatch._alerting.prometheus import PrometheusSink

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def degrading_outcomes(seed: int = 5, n_before: int = 800, n_after: int = 600) -> Iterator[Outcome]:
    """Tasks on two streams; `fix-tests` drops 0.8 -> 0.5 and switches model at the change."""
    rng = random.Random(seed)
    for i in range(n_before + n_after):
        after = i >= n_before
        for task, rate in (("fix-tests", 0.5 if after else 0.8), ("triage", 0.8)):
            yield Outcome(
                task=task,
                service="agent",
                time=1_767_225_600.0 + 60 * i,
                model=("claude-b" if after else "claude-a") if task == "fix-tests" else "claude-a",
                success=rng.random() < rate,
                latency_s=rng.lognormvariate(1.0, 0.3),
                input_tokens=rng.randint(900, 1100),
                output_tokens=rng.randint(180, 220),
                cost_usd=0.004 + rng.random() * 0.001,
            )


def degrading_sink() -> tuple[PrometheusSink, Monitor]:
    """The sink (and monitor) after the degrading run: confirmed drift, version change, every metric."""
    sink = PrometheusSink()
    monitor = Monitor(Config(signals=["success"]), [sink], threaded=False)
    for outcome in degrading_outcomes():
        monitor.process(outcome)
    return sink, monitor


def parse_exposition(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by metric name: (labels, value). Raises on a line that is not valid text format."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, inner, value = match.groups()
        labels = {k: v.encode().decode("unicode_escape") for k, v in _PAIR.findall(inner or "")}
        out.setdefault(name, []).append((labels, float(value)))
    return out
