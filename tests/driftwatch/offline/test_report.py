"""driftwatch report: candles, alerts input, the CLI end to end, real Aider data, headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from driftwatch import Outcome
from driftwatch._cli.main import main
from driftwatch._offline.report import build_report, read_alerts, summary_table

ROOT = Path(__file__).resolve().parents[3]
SHARED = next(
    (p for p in (ROOT.parent / "shared", Path("/work/shared")) if p.is_dir()),
    ROOT.parent / "shared",
)
SONNET = SHARED / "data" / "aider" / "sonnet-fine.yml"
DAY0 = 1_790_000_000.0 - 1_790_000_000.0 % 86400  # a midnight UTC


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"report_{name}", ROOT / "examples" / "report" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_outcomes(day: int, hour: int, run: str, passes: int, n: int) -> list[Outcome]:
    t = DAY0 + day * 86400 + hour * 3600
    return [
        Outcome(task="t", time=t + i, success=i < passes, labels={"run_id": run}, service="s")
        for i in range(n)
    ]


def test_daily_candle_is_first_last_and_range_of_runs() -> None:
    """A day's candle opens at its first run, closes at its last, spans the runs' range; volume counts."""
    outcomes = (
        run_outcomes(0, 1, "a", 6, 10)  # 60%
        + run_outcomes(0, 5, "b", 9, 10)  # 90%
        + run_outcomes(0, 9, "c", 3, 10)  # 30%
        + run_outcomes(0, 13, "d", 5, 10)  # 50%
        + run_outcomes(1, 2, "e", 8, 10)
    )
    (report,) = build_report(outcomes, [])
    first, second = report.candles
    assert (first.open, first.high, first.low, first.close) == (0.6, 0.9, 0.3, 0.5)
    assert (first.runs, first.volume) == (4, 40)
    assert (second.open, second.close, second.runs, second.volume) == (0.8, 0.8, 1, 10)


def test_runs_without_a_run_label_are_time_windows() -> None:
    """Without the run label, the outcomes of one window form a run."""
    outcomes = [Outcome(task="t", time=DAY0 + 60 * i, success=i % 2 == 0) for i in range(120)]  # 2 hours
    (report,) = build_report(outcomes, [], run_window=3600)
    assert report.candles[0].runs == 2 and report.candles[0].volume == 120


def test_bad_alert_lines_are_named_and_the_rest_kept(tmp_path: Path) -> None:
    """A bad Alert JSON line is reported with its line number and the valid form; good lines are kept."""
    good = {"id": "x", "kind": "drift", "status": "confirmed", "stream": {"service": "s", "task": "t"}}
    path = tmp_path / "alerts.jsonl"
    path.write_text(
        json.dumps({**good, "change_at": "2026-11-01T00:00:00Z"})
        + "\n{oops\n"
        + json.dumps({**good, "stream": "s/t", "change_at": 0})
        + "\n"
        + json.dumps({**good, "change_at": "yesterday"})
        + "\n",
        encoding="utf-8",
    )
    errors: list[str] = []
    alerts = read_alerts(str(path), errors)
    assert len(alerts) == 1 and alerts[0]["change_at"] == 1_793_491_200.0
    assert [e.split(": ")[0] for e in errors] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "not valid JSON" in errors[0] and '"service"' in errors[1] and "RFC 3339" in errors[2]


def test_change_point_splits_baseline_and_current_and_the_alert_stays_open() -> None:
    """A confirmed alert's change_at ends the baseline, starts current, and counts as open until resolved."""
    outcomes = [o for d in range(10) for o in run_outcomes(d, 0, f"r{d}", 8 if d < 5 else 4, 10)]
    at = DAY0 + 5 * 86400
    alert = {"id": "a", "kind": "drift", "status": "confirmed", "signal": "success", "direction": "down"}
    alert |= {"stream": {"service": "s", "task": "t"}, "change_at": at}
    (report,) = build_report(outcomes, [alert])
    assert report.baseline is not None and report.current is not None
    assert (report.baseline.mean, report.baseline.n) == (0.8, 50)
    assert (report.current.mean, report.current.n) == (0.4, 50)
    assert "success down (confirmed)" in summary_table([report], "success")
    (closed,) = build_report(outcomes, [alert, alert | {"status": "resolved"}])
    assert closed.open_alerts == [] and len(closed.change_points) == 1


def test_report_cli_writes_self_contained_html_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Simulated drop on one stream: the report detects it, embeds both charts and needs no network."""
    outcomes = write_jsonl(tmp_path / "o.jsonl", example("simulate").simulate(days=20))
    out = tmp_path / "report"
    assert main(["report", str(outcomes), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "success down (confirmed)" in lines["service=coding-agent, task=fix-tests"]
    assert lines["service=coding-agent, task=write-docs"].endswith("none")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "change point" in page and "model claude-sonnet-4-6 -&gt; claude-opus-4-7" in page
    assert sorted(p.name for p in out.glob("*.png")) == [
        "service-coding-agent-task-fix-tests.png",
        "service-coding-agent-task-write-docs.png",
    ]


def test_report_cli_reads_an_alerts_file_and_counts_undrawn_streams(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --alerts no detection runs (none given: none shown); streams over --max-streams are counted."""
    outcomes = write_jsonl(tmp_path / "o.jsonl", example("simulate").simulate(days=6))
    alerts = tmp_path / "a.jsonl"
    alerts.write_text("", encoding="utf-8")
    out = tmp_path / "r"
    assert (
        main(["report", str(outcomes), "--alerts", str(alerts), "--out", str(out), "--max-streams", "1"]) == 0
    )
    text = capsys.readouterr().out
    assert "confirmed" not in text and "1 more streams not drawn (--max-streams 1)" in text
    assert len(list(out.glob("*.png"))) == 1


def test_report_cli_rejects_an_unknown_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--signal must name a signal; the error lists the valid ones and nothing is written."""
    outcomes = write_jsonl(tmp_path / "o.jsonl", [{"time": 0, "task": "t", "success": True}])
    assert main(["report", str(outcomes), "--signal", "pass", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--signal 'pass' is not a signal" in err and "success, score, latency_s" in err
    assert not (tmp_path / "r").exists()


def test_aider_sonnet_runs_report_versions_and_no_change_point(tmp_path: Path) -> None:
    """20 real Aider runs: 20 runs in the candles, aider versions marked, no change point drawn."""
    if not SONNET.exists():
        pytest.skip(f"real data not found: {SONNET}")
    import yaml

    records = example("aider").convert(yaml.safe_load(SONNET.read_text(encoding="utf-8")))
    outcomes = write_jsonl(tmp_path / "aider.jsonl", records)
    out = tmp_path / "r"
    assert main(["report", str(outcomes), "--out", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "app.version 0.38.1-dev -&gt; 0.39.1-dev" in page
    assert "change point:" not in page
    assert "<td>20</td>" in page  # runs


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Headless Chromium renders the report from file:// into a screenshot that is not blank."""
    browser = chromium()
    if browser is None:
        pytest.skip("Debian chromium not installed (make chromium installs it)")
    from PIL import Image, ImageStat

    outcomes = write_jsonl(tmp_path / "o.jsonl", example("simulate").simulate(days=10))
    out = tmp_path / "report"
    assert main(["report", str(outcomes), "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            (out / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        gray = image.convert("L")
        assert gray.size == (1200, 900)
        histogram = gray.histogram()
        non_white = 1 - sum(histogram[250:]) / (gray.size[0] * gray.size[1])
        variance = ImageStat.Stat(gray).var[0]
        # Colour from the charts: red/green candles, not just black text on white.
        colours = image.convert("RGB").getcolors(1 << 20) or []
    assert non_white > 0.05 and variance > 500, (non_white, variance)
    assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours), "no red candle pixel"


def test_report_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`driftwatch report --help` explains the chart and gives an example."""
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "example: driftwatch report outcomes.jsonl --alerts alerts.jsonl --out report/" in text
    assert "candlestick" in text and "--signal" in text


def _suite(seed: int, shift: float, hard_share: float) -> list[Outcome]:
    """50 recurring tasks (logit sd 2) for 20 days; from day 10 ability moves by ``shift`` logits and
    ``hard_share`` of the draws come from the hardest half."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 2.0, 50)
    hard = np.flatnonzero(a <= np.median(a))
    easy = np.flatnonzero(a > np.median(a))
    out = []
    for i in range(4000):
        later = i >= 2000
        pick = hard if later and rng.random() < hard_share else (easy if later else np.arange(50))
        task = int(rng.choice(pick))
        p = 1 / (1 + np.exp(-(a[task] + (shift if later else 0.0))))
        out.append(
            Outcome(task="suite", time=1.7e9 + 432 * i, task_id=f"t{task}", success=bool(rng.random() < p))
        )
    return out


def test_current_at_the_baseline_task_mix_tells_ability_from_mix() -> None:
    """A shift to hard tasks moves the raw pass rate, not the task-adjusted one; a real drop moves both."""
    outcomes = _suite(1, 0.0, 0.8)
    before = sum(bool(o.success) for o in outcomes[:2000]) / 2000  # the period before the current 10 days
    (mix,) = build_report(outcomes, [], current_days=10)
    assert mix.current is not None and mix.adjusted is not None
    assert mix.current.mean < before - 0.1  # the raw rate fell with the mix
    assert mix.adjusted.low <= before <= mix.adjusted.high
    outcomes = _suite(2, -1.0, 0.5)
    before = sum(bool(o.success) for o in outcomes[:2000]) / 2000
    (drop,) = build_report(outcomes, [], current_days=10)
    assert drop.adjusted is not None and drop.adjusted.high < before - 0.1
    assert "current at baseline task mix" in summary_table([mix], "success")
    (plain,) = build_report([Outcome(task="x", time=1.7e9 + i, success=i % 2 == 0) for i in range(50)], [])
    assert plain.adjusted is None  # no task ids: nothing to adjust
