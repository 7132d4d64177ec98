"""What turning the agent signals on by default costs and buys: false pages and a reads-per-edit fall.

Seeded simulation of agent runs (one task outcome per run, as ``driftwatch.agent_run`` and serve's
Claude Code prompts produce them): success, wall latency, tokens, cost, tool calls, turns
(overdispersed counts), thinking tokens, and Read/Grep/Glob and Edit/Write uses whose ratio is
``reads_per_edit`` (a run without an edit has none). Two configs on the same streams:

* **before** — the eight signals that were the default (``DEFAULT_SIGNALS[:8]``);
* **now** — today's default, the eight plus ``turns``, ``thinking_tokens``, ``reads_per_edit``.

Counted: pages (``confirmed`` alerts, any signal, first per stream) on no-change streams per
100,000 runs after the warm-up, with a 95% Poisson interval; and on change streams where only the
reads before an edit fall (mean 6.6 → 2.0 per edit after 1,000 runs, the fall reported in the
spring 2026 Claude Code analyses), the share paged within 1,500 runs and the median runs to the page.
The oracle for the change is a one-sided CUSUM on ``log1p(reads_per_edit)`` told both means and
standard deviations, its threshold set to 1 false alarm per 10,000 runs on null streams of the same
generator.

Run: .venv/bin/python -P benchmarks/agent_signals.py [--seed 18] [--null-streams 20] [--streams 20]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

import numpy as np

from driftwatch import Config, Monitor, Outcome
from driftwatch._outcome import DEFAULT_SIGNALS

TAU = 1000
HORIZON = 1500
NULL_LEN = 10_500
WARMUP = 500
READS_BEFORE, READS_AFTER = 6.6, 2.0


def runs(rng: np.random.Generator, n: int, reads_after: float | None) -> list[Outcome]:
    """``n`` agent runs of one stream; reads per edit fall to ``reads_after`` at ``TAU`` (None: never)."""
    out = []
    for i in range(n):
        reads_mean = READS_BEFORE if reads_after is None or i < TAU else reads_after
        edits = int(rng.poisson(1.5))
        # Reads per edit, overdispersed across runs (gamma-mixed Poisson).
        reads = int(rng.poisson(rng.gamma(4.0, reads_mean / 4.0) * max(edits, 1)))
        others = int(rng.poisson(4.0))
        turns = 1 + int(rng.negative_binomial(3, 3 / (3 + 11)))
        outcome = Outcome(
            task="agent",
            time=float(i),
            service="bench",
            success=bool(rng.random() < 0.7),
            latency_s=float(rng.lognormal(math.log(60), 0.5)),
            input_tokens=int(rng.lognormal(math.log(50_000), 0.6)),
            output_tokens=int(rng.lognormal(math.log(3_000), 0.6)),
            cost_usd=float(rng.lognormal(math.log(0.5), 0.6)),
            turns=turns,
            thinking_tokens=int(rng.lognormal(math.log(2_000), 0.8)),
            tool_uses={"Read": reads, "Edit": edits, "Bash": others},
            tool_calls=reads + edits + others,
        )
        out.append(outcome.derive())
    return out


def pages(outcomes: list[Outcome], signals: Sequence[str]) -> list[tuple[int, str]]:
    """(index, signal) of every confirmed drift alert (any direction), in order."""
    monitor = Monitor(Config(signals=list(signals), console=False), threaded=False)
    out = []
    for i, outcome in enumerate(outcomes):
        for alert in monitor.process(outcome):
            if alert.kind == "drift" and alert.status == "confirmed":
                out.append((i, alert.signal))
    return out


def first_page(outcomes: list[Outcome], signals: Sequence[str]) -> tuple[int | None, str | None]:
    """Index and signal of the first confirmed alert (any direction), or (None, None)."""
    found = pages(outcomes, signals)
    return found[0] if found else (None, None)


def median_ci(delays: list[int | None], seed: int) -> str:
    """Median runs to page (unpaged = ∞) with a 95% bootstrap interval (2,000 resamples, seeded)."""
    xs = np.array([d if d is not None else np.inf for d in delays], dtype=float)
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(xs, size=(2000, len(xs)), replace=True), axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])

    def fmt(x: float) -> str:
        return "∞" if math.isinf(x) else f"{x:.0f}"

    return f"{fmt(float(np.median(xs)))} ({fmt(float(lo))}–{fmt(float(hi))})"


def poisson_ci(k: int, exposure: float) -> tuple[float, float, float]:
    """Rate per 100k and a 95% interval (Wilson–Hilferty bounds for the Poisson count)."""
    z = 1.959964
    lo = 0.0 if k == 0 else k * (1 - 1 / (9 * k) - z / (3 * math.sqrt(k))) ** 3
    k1 = k + 1
    hi = k1 * (1 - 1 / (9 * k1) + z / (3 * math.sqrt(k1))) ** 3
    f = 1e5 / exposure
    return k * f, lo * f, hi * f


def cusum_oracle(rng: np.random.Generator, streams: int) -> tuple[float, list[int | None]]:
    """Threshold at 1 false alarm per 10k on null streams, then the alarm index on change streams."""

    def series(reads_after: float | None, n: int) -> np.ndarray:
        xs = [o.reads_per_edit for o in runs(rng, n, reads_after)]
        return np.array([math.log1p(x) if x is not None else np.nan for x in xs])

    null = [series(None, NULL_LEN) for _ in range(10)]
    pre = np.concatenate([s[~np.isnan(s)] for s in null])
    post_sample = series(READS_AFTER, TAU + 4000)[TAU:]
    post = post_sample[~np.isnan(post_sample)]
    mu0, mu1, sd = float(pre.mean()), float(post.mean()), float(pre.std())
    k = (mu0 - mu1) / 2

    def alarm(s: np.ndarray, h: float) -> int | None:
        c = 0.0
        for i, x in enumerate(s):
            if np.isnan(x):
                continue
            c = max(0.0, c + (mu0 - x) / sd - k / sd)
            if c > h:
                return i
        return None

    h = 1.0
    while True:
        alarms = [alarm(s, h) for s in null]
        exposure = sum((a + 1) if a is not None else len(s) for a, s in zip(alarms, null, strict=True))
        if sum(a is not None for a in alarms) / exposure <= 1e-4:
            break
        h += 0.25
    changes = [alarm(series(READS_AFTER, TAU + HORIZON), h) for _ in range(streams)]
    return h, [None if a is None or a < TAU else a - TAU for a in changes]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--null-streams", type=int, default=20)
    parser.add_argument("--streams", type=int, default=20)
    args = parser.parse_args(argv)
    started = time.monotonic()
    configs = {"before (8 signals)": DEFAULT_SIGNALS[:8], "now (default, 11 signals)": DEFAULT_SIGNALS}
    rng = np.random.default_rng(args.seed)
    nulls = [runs(rng, NULL_LEN, None) for _ in range(args.null_streams)]
    changes = [runs(rng, TAU + HORIZON, READS_AFTER) for _ in range(args.streams)]
    print(
        f"Generated by `python -P benchmarks/agent_signals.py --seed {args.seed} --null-streams "
        f"{args.null_streams} --streams {args.streams}`.\n"
    )
    print(
        "| config | false pages (streams) | per 100k runs (95%) | signals falsely paged "
        "| reads/edit fall paged ≤ 1,500 | median runs to page (95%) | signals that paged the fall |"
    )
    print("|---|---:|---|---|---:|---:|---|")
    per_signal: dict[str, dict[str, int]] = {}
    for name, signals in configs.items():
        every = [pages(s, signals) for s in nulls]
        per_signal[name] = {sig: sum(1 for found in every for _, s in found if s == sig) for sig in signals}
        firsts = [found[0] if found else (None, None) for found in every]
        k = sum(i is not None for i, _ in firsts)
        exposure = sum((i if i is not None else NULL_LEN) - WARMUP for i, _ in firsts)
        rate, lo, hi = poisson_ci(k, exposure)
        paged_signals = sorted({sig for _, sig in firsts if sig})
        delays = []
        by: dict[str, int] = {}
        for stream in changes:
            i, sig = first_page(stream, signals)
            delays.append(i - TAU if i is not None and i >= TAU else None)
            if i is not None and i >= TAU and sig:
                by[sig] = by.get(sig, 0) + 1
        hit = [d for d in delays if d is not None]
        median = median_ci(delays, args.seed)
        falsely = ", ".join(paged_signals) or "—"
        paged_by = ", ".join(f"{sig} {n}" for sig, n in sorted(by.items()))
        print(
            f"| {name} | {k} ({len(nulls)}) | {rate:.2f} ({lo:.2f}–{hi:.2f}) | {falsely} "
            f"| {len(hit)}/{len(changes)} | {median} | {paged_by} |"
        )
    h, oracle = cusum_oracle(np.random.default_rng(args.seed + 1), args.streams)
    hit = [d for d in oracle if d is not None]
    median = median_ci(oracle, args.seed)
    print(
        f"| oracle: CUSUM on log1p(reads_per_edit) @1/10k (h={h:.2f}) | | | "
        f"| {len(hit)}/{len(oracle)} | {median} | reads_per_edit |"
    )
    print(
        "\nEvery false page on the no-change streams, per signal, per 100,000 runs after the warm-up "
        "(one detector per signal and stream; the same streams for both configs):\n"
    )
    exposure_all = len(nulls) * (NULL_LEN - WARMUP)
    print("| signal | " + " | ".join(configs) + " |")
    print("|---|" + "---:|" * len(configs))
    for sig in DEFAULT_SIGNALS:
        cells = []
        for name in configs:
            if sig not in per_signal[name]:
                cells.append("—")
                continue
            k = per_signal[name][sig]
            rate, lo, hi = poisson_ci(k, exposure_all)
            cells.append(f"{k}: {rate:.1f} ({lo:.1f}–{hi:.1f})")
        print(f"| {sig} | " + " | ".join(cells) + " |")
    print(f"\n_Run time {time.monotonic() - started:.0f} s._")
    return 0


if __name__ == "__main__":
    sys.exit(main())
