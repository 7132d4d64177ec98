"""``driftwatch report``: a self-contained HTML report with one PNG per stream, and a terminal summary.

Each stream gets a daily candlestick of one signal (open/close: the first and last run of the day,
high/low: the range across the day's runs), volume bars (outcomes per day), vertical lines at change
points (``change_at`` of confirmed drift alerts) and version markers (``version_change``
annotations), and a band for the baseline interval. A "run" is the outcomes that share the run label
(``run_id`` by default) or, without one, the outcomes of one time window (an hour by default); its
value is the mean of the signal over them, so a pass rate for ``success``.

The PNGs are embedded in the HTML as base64 so the file opens anywhere with no network.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftwatch._outcome import SIGNALS, Outcome, OutcomeError, format_time, parse_time, stream_labels
from driftwatch._stats import student_t_quantile, wilson_interval
from driftwatch.detectors._ability import TaskModel

__all__ = ["ReportError", "StreamReport", "build_report", "read_alerts", "render_html", "summary_table"]

DAY = 86400.0
#: Events (change points, version changes) listed per stream in the HTML; the rest are counted.
MAX_EVENTS = 50


class ReportError(ValueError):
    """Input the report cannot use; the message says what, where, and the valid form."""


@dataclass(frozen=True, slots=True)
class Candle:
    """One day of one stream: runs' values at open/high/low/close and the outcomes counted."""

    day: float
    """Midnight UTC of the day, epoch seconds."""
    open: float
    high: float
    low: float
    close: float
    runs: int
    volume: int


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    start: float
    end: float


@dataclass
class StreamReport:
    """What the report shows for one stream."""

    labels: dict[str, str]
    candles: list[Candle]
    outcomes: int
    baseline: Interval | None
    current: Interval | None
    change_points: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    adjusted: Interval | None = None
    """Where task ids recur: the current period at the baseline's task mix (``task_adjusted``)."""

    @property
    def name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels.items())


def signal_value(outcome: Outcome, signal: str) -> float | None:
    value = getattr(outcome, signal, None)
    if value is None:
        return None
    return float(value)


def check_signal(signal: str) -> None:
    if signal not in SIGNALS:
        raise ReportError(f"--signal {signal!r} is not a signal; choose one of {', '.join(SIGNALS)}")


def read_alerts(path: str, errors: list[str]) -> list[dict[str, Any]]:
    """Alert JSON lines from ``path`` (as ``driftwatch replay --alerts-out`` writes them).

    A bad line is recorded in ``errors`` as ``path:line: what is wrong`` and skipped.
    """
    alerts: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append(
                    f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); expected one Alert JSON"
                )
                continue
            if not isinstance(record, dict):
                errors.append(f"{where}: expected an Alert JSON object, got {type(record).__name__}")
                continue
            stream = record.get("stream")
            if not isinstance(stream, dict) or not all(isinstance(v, str) for v in stream.values()):
                errors.append(
                    f"{where}: key 'stream': expected the stream's labels such as "
                    f'{{"service": "agent", "task": "fix-tests"}}, got {stream!r}'
                )
                continue
            try:
                record["change_at"] = parse_time(record.get("change_at"), f"{where}: key 'change_at'")
            except OutcomeError as exc:
                errors.append(str(exc))
                continue
            alerts.append(record)
    return alerts


def _interval(values: Sequence[float], binary: bool, start: float, end: float) -> Interval | None:
    n = len(values)
    if n == 0:
        return None
    mean = sum(values) / n
    if binary:
        low, high = wilson_interval(sum(values), n)
    elif n < 2:
        low = high = mean
    else:
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = student_t_quantile(0.975, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return Interval(mean, low, high, n, start, end)


def task_adjusted(
    base: Sequence[tuple[float, str | None]], cur: Sequence[tuple[float, str | None]], binary: bool
) -> Interval | None:
    """The current level at the baseline's task mix, from ``(value, task_id)`` pairs; None unless ids recur.

    Each task's baseline expectation is learnt with shrinkage across tasks (``TaskModel``, as
    detection does; a task seen fewer than twice gets the pooled value); the current period's
    departure from its own tasks' expectations (observed − expected mean) is added to the baseline
    mean. So a current period of harder tasks at unchanged ability reads as the baseline; raw pass
    rate moves, this does not. The 95% interval adds the residuals' sampling variance, each task's
    expectation's (by its share of the current period) and the baseline mean's.
    """
    model = TaskModel("binary" if binary else "numeric")
    for value, task in base:
        model.add(value, task)
    model.fit()
    if not cur or not model.recurring():
        return None
    n = len(cur)
    expected = [model.expected(task)[0] for _, task in cur]
    residuals = [value - e for (value, _), e in zip(cur, expected, strict=True)]
    shift = sum(residuals) / n
    resid_var = sum((r - shift) ** 2 for r in residuals) / (n * (n - 1)) if n > 1 else 0.0
    shares: dict[str | None, int] = {}
    for _, task in cur:
        shares[task] = shares.get(task, 0) + 1
    pooled = model.pooled
    spread = pooled.var if pooled.n > 1 else 0.0
    task_var = 0.0
    for task, k in shares.items():
        m = model.tasks.get(task) if task is not None else None
        seen = m.n if m is not None and m.n >= 2 else pooled.n
        task_var += (k / n) ** 2 * (model.expected(task)[1] ** 2 if binary else model.within) / max(seen, 1)
    var = resid_var + task_var + spread / max(pooled.n, 1)
    mean = pooled.mean + shift
    half = 1.959964 * math.sqrt(var)
    low, high = (max(0.0, mean - half), min(1.0, mean + half)) if binary else (mean - half, mean + half)
    return Interval(mean, low, high, n, 0.0, 0.0)


def _day(t: float) -> float:
    return math.floor(t / DAY) * DAY


def _candles(points: list[tuple[float, float, str]]) -> list[Candle]:
    """Daily candles from ``(time, value, run key)`` in event time; a run's value is its mean."""
    runs: dict[str, list[float]] = {}  # run key -> [first time, sum, count]
    for t, v, run in points:
        acc = runs.get(run)
        if acc is None:
            runs[run] = [t, v, 1.0]
        else:
            acc[1] += v
            acc[2] += 1
    by_day: dict[float, list[tuple[float, float, int]]] = {}
    for first, total, count in runs.values():
        by_day.setdefault(_day(first), []).append((first, total / count, int(count)))
    candles = []
    for day in sorted(by_day):
        day_runs = sorted(by_day[day])
        values = [v for _, v, _ in day_runs]
        candles.append(
            Candle(
                day=day,
                open=values[0],
                high=max(values),
                low=min(values),
                close=values[-1],
                runs=len(day_runs),
                volume=sum(c for _, _, c in day_runs),
            )
        )
    return candles


def _same_stream(alert: dict[str, Any], labels: dict[str, str]) -> bool:
    stream: dict[str, str] = alert["stream"]
    return stream == labels


def build_report(
    outcomes: Iterable[Outcome],
    alerts: Sequence[dict[str, Any]],
    *,
    signal: str = "success",
    extra_labels: Sequence[str] = (),
    run_label: str = "run_id",
    run_window: float = 3600.0,
    current_days: float = 7.0,
) -> list[StreamReport]:
    """One ``StreamReport`` per stream that has at least one value of ``signal``, busiest first.

    ``alerts`` are Alert JSON dicts with ``change_at`` already in epoch seconds (``read_alerts``).
    Baseline: the stream's values before its first confirmed change point of ``signal`` (all of them
    without one). Current: the values since the last change point, or the last ``current_days``.
    """
    check_signal(signal)
    points: dict[tuple[tuple[str, str], ...], list[tuple[float, float, str]]] = {}
    tasks: dict[tuple[tuple[str, str], ...], list[str | None]] = {}
    for outcome in outcomes:
        value = signal_value(outcome, signal)
        if value is None:
            continue
        labels = stream_labels(outcome, extra_labels)
        run = outcome.labels.get(run_label)
        key = f"r:{run}" if run is not None else f"w:{math.floor(outcome.time / run_window)}"
        points.setdefault(tuple(labels.items()), []).append((outcome.time, value, key))
        tasks.setdefault(tuple(labels.items()), []).append(outcome.task_id)
    latest: dict[str, dict[str, Any]] = {}
    for alert in alerts:  # the last status of each id wins
        latest[str(alert.get("id"))] = alert
    reports = []
    for stream, pts in points.items():
        labels = dict(stream)
        order = sorted(range(len(pts)), key=lambda i: pts[i][0])
        ids = [tasks[stream][i] for i in order]
        pts = [pts[i] for i in order]
        mine = [a for a in alerts if _same_stream(a, labels)]
        changes = sorted(
            (
                a
                for a in mine
                if a.get("kind", "drift") == "drift"
                and a.get("status") == "confirmed"
                and a.get("signal") == signal
            ),
            key=lambda a: float(a["change_at"]),
        )
        versions = sorted(
            (a for a in mine if a.get("kind") == "version_change"), key=lambda a: float(a["change_at"])
        )
        open_alerts = [
            a
            for a in latest.values()
            if _same_stream(a, labels)
            and a.get("kind", "drift") == "drift"
            and a.get("status") in ("suspected", "confirmed")
        ]
        binary = SIGNALS[signal] == "binary"
        first_change = float(changes[0]["change_at"]) if changes else math.inf
        base_pts = [p for p in pts if p[0] < first_change]
        baseline = _interval(
            [v for _, v, _ in base_pts], binary, pts[0][0], base_pts[-1][0] if base_pts else pts[0][0]
        )
        since = float(changes[-1]["change_at"]) if changes else pts[-1][0] - current_days * DAY
        cur_pts = [p for p in pts if p[0] >= since]
        current = _interval([v for _, v, _ in cur_pts], binary, since, pts[-1][0])
        adjusted = None
        if any(ids):
            pairs = [(p[1], task) for p, task in zip(pts, ids, strict=True)]
            cut = len(base_pts) if changes else len(pts) - len(cur_pts)
            found = task_adjusted(pairs[:cut], pairs[len(pts) - len(cur_pts) :], binary)
            if found is not None:
                adjusted = Interval(found.mean, found.low, found.high, found.n, since, pts[-1][0])
        reports.append(
            StreamReport(
                labels=labels,
                candles=_candles(pts),
                outcomes=len(pts),
                baseline=baseline,
                current=current,
                change_points=changes,
                versions=versions,
                open_alerts=open_alerts,
                adjusted=adjusted,
            )
        )
    reports.sort(key=lambda r: (-len(r.open_alerts), -r.outcomes, r.name))
    return reports


def _fmt(value: float | None, signal: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if SIGNALS.get(signal) == "binary":
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def _fmt_interval(iv: Interval | None, signal: str) -> str:
    if iv is None:
        return "-"
    return f"{_fmt(iv.mean, signal)} [{_fmt(iv.low, signal)}, {_fmt(iv.high, signal)}] n={iv.n}"


def _rows(reports: Sequence[StreamReport], signal: str) -> list[list[str]]:
    rows = []
    for r in reports:
        runs = sum(c.runs for c in r.candles)
        opened = ", ".join(
            f"{a.get('signal')} {a.get('direction')} ({a.get('status')})" for a in r.open_alerts
        )
        rows.append(
            [
                r.name,
                str(runs),
                str(r.outcomes),
                _fmt_interval(r.baseline, signal),
                _fmt_interval(r.current, signal),
                _fmt_interval(r.adjusted, signal),
                opened or "none",
            ]
        )
    return rows


HEADER = [
    "stream",
    "runs",
    "outcomes",
    "baseline [95% CI]",
    "current [95% CI]",
    "current at baseline task mix [95% CI]",
    "open alerts",
]


def summary_table(reports: Sequence[StreamReport], signal: str) -> str:
    """The terminal summary: one line per stream, columns aligned."""
    rows = [HEADER, *_rows(reports, signal)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def slug(name: str) -> str:
    """A file name for a stream: letters, digits, dots and dashes only."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")[:100] or "stream"


def render_png(report: StreamReport, signal: str) -> bytes:
    """The stream's chart as PNG bytes: candles, baseline band, change points, versions, volume."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit: the report runs on servers and in CI
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def num(t: float) -> float:
        return float(mdates.date2num(datetime.fromtimestamp(t, UTC)))  # type: ignore[no-untyped-call]

    fig, (ax, vol) = plt.subplots(
        2, 1, figsize=(11, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    try:
        x = [num(c.day + DAY / 2) for c in report.candles]
        up = [c.close >= c.open for c in report.candles]
        colors = ["#2e7d32" if u else "#c62828" for u in up]
        ax.vlines(x, [c.low for c in report.candles], [c.high for c in report.candles], colors=colors, lw=1)
        bottoms = [min(c.open, c.close) for c in report.candles]
        heights = [max(abs(c.close - c.open), 1e-9) for c in report.candles]
        ax.bar(x, heights, bottom=bottoms, width=0.6, color=colors, edgecolor=colors, zorder=3)
        if report.baseline is not None:
            b = report.baseline
            end = b.end if report.change_points else report.candles[-1].day + DAY
            ax.fill_between(
                [num(b.start), num(end)],
                b.low,
                b.high,
                color="#1565c0",
                alpha=0.15,
                lw=0,
                label="baseline 95% CI",
            )
            ax.hlines(b.mean, num(b.start), num(end), colors="#1565c0", lw=1, linestyles="solid")
        if report.current is not None and report.change_points:
            c = report.current
            ax.fill_between(
                [num(c.start), num(c.end)],
                c.low,
                c.high,
                color="#ef6c00",
                alpha=0.15,
                lw=0,
                label="current 95% CI",
            )
        for i, a in enumerate(report.change_points):
            ax.axvline(
                num(float(a["change_at"])),
                color="#c62828",
                ls="--",
                lw=1.5,
                label="change point" if i == 0 else None,
            )
        span = num(report.candles[-1].day + DAY) - num(report.candles[0].day)
        last_label = -math.inf
        for i, a in enumerate(report.versions):
            t = num(float(a["change_at"]))
            ax.axvline(t, color="#616161", ls=":", lw=1.2, label="version change" if i == 0 else None)
            if t - last_label < span * 0.03:
                continue  # labels this close would overprint; the HTML lists every change
            last_label = t
            extra = a.get("extra") or {}
            ax.annotate(
                f"{extra.get('marker', a.get('signal'))} {extra.get('after', '')}",
                (t, 0.98),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                rotation=90,
                va="top",
                ha="left",
                fontsize=7,
                color="#424242",
            )
        # Explicit limits: the bars' sticky edges would otherwise let autoscaling cut off low wicks.
        lows = [c.low for c in report.candles] + [iv.low for iv in (report.baseline, report.current) if iv]
        highs = [c.high for c in report.candles] + [iv.high for iv in (report.baseline, report.current) if iv]
        pad = max((max(highs) - min(lows)) * 0.08, 1e-6)
        ax.set_ylim(min(lows) - pad, max(highs) + pad)
        ax.set_ylabel(f"{signal} per run" if signal != "success" else "pass rate per run")
        if SIGNALS[signal] == "binary":
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_title(report.name, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
        vol.bar(x, [c.volume for c in report.candles], width=0.6, color="#90a4ae")
        vol.set_ylabel("outcomes/day", fontsize=8)
        vol.grid(alpha=0.3)
        vol.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return buf.getvalue()
    finally:
        plt.close(fig)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#212121;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 6px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #cfd8dc;padding:4px 8px;text-align:left}
th{background:#eceff1} tr.alert td{background:#ffebee} .meta{color:#616161;font-size:13px}
img{max-width:100%;border:1px solid #eceff1} ul{font-size:13px}
"""


def render_html(
    reports: Sequence[StreamReport],
    images: dict[str, bytes],
    *,
    signal: str,
    source: str,
    notes: Sequence[str] = (),
) -> str:
    """The report as one HTML document with every image inline (no network needed to open it)."""
    e = html.escape
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>driftwatch report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>driftwatch report</h1>",
        f"<p class=meta>{e(source)} · signal <b>{e(signal)}</b> · {len(reports)} streams · "
        f"generated {e(format_time(datetime.now(UTC).timestamp()))}</p>",
    ]
    for note in notes:
        out.append(f"<p class=meta>{e(note)}</p>")
    out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADER) + "</tr>")
    for r, row in zip(reports, _rows(reports, signal), strict=True):
        cls = " class=alert" if r.open_alerts else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
    out.append("</table>")
    for r in reports:
        out.append(f"<h2>{e(r.name)}</h2>")
        png = images.get(r.name)
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            out.append(f'<img alt="{e(signal)} per day for {e(r.name)}" src="data:image/png;base64,{data}">')
        events = [(float(a["change_at"]), "change point", a) for a in r.change_points]
        events += [(float(a["change_at"]), "version change", a) for a in r.versions]
        if events:
            out.append("<ul>")
            events.sort(key=lambda ev: ev[0])
            for t, what, a in events[:MAX_EVENTS]:
                out.append(f"<li>{e(format_time(t))} {e(what)}: {e(str(a.get('message', '')))}</li>")
            if len(events) > MAX_EVENTS:
                out.append(f"<li>… and {len(events) - MAX_EVENTS} more events</li>")
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def render_images(
    reports: Sequence[StreamReport], signal: str, progress: Callable[[int, int], None] | None = None
) -> dict[str, bytes]:
    """Each stream's PNG by stream name."""
    images = {}
    for i, r in enumerate(reports, 1):
        images[r.name] = render_png(r, signal)
        if progress is not None:
            progress(i, len(reports))
    return images
