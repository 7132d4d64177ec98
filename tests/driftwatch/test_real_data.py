"""Real version drift: GPT-4 March vs June on LeetCode, Aider's Sonnet reruns, Qwen across providers."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import yaml

from driftwatch import Alert, Config, Monitor, Outcome
from driftwatch._stats import compare_runs

SHARED = next(
    (p for p in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")) if p.is_dir()),
    Path(__file__).resolve().parents[3] / "shared",
)
LEETCODE = SHARED / "data" / "llmdrift" / "LEETCODE_EASY_EVAL.csv"
SONNET = SHARED / "data" / "aider" / "sonnet-fine.yml"
QUANT = SHARED / "data" / "aider" / "quant.yml"
MARCH, JUNE = "openaichat/gpt-4-0314", "openaichat/gpt-4-0613"
T0 = 1_688_000_000.0


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"real data not found: {path} (expected in ../shared/data beside the clone or /work/shared)"
        )


def leetcode_rows() -> list[dict[str, str]]:
    """The 50 GPT-4 March answers, then the same 50 problems answered in June."""
    rows = list(csv.DictReader(LEETCODE.open(encoding="utf-8")))
    return [r for r in rows if r["model"] == MARCH] + [r for r in rows if r["model"] == JUNE]


@pytest.mark.parametrize(
    ("column", "rates", "direction", "discordant"),
    [
        # Directly executable answers: June wraps code in markdown fences that LeetCode rejects.
        ("Code_Submit", (26, 5), "down", (23, 2)),
        # With the fences stripped, June is better.
        ("Clean_Code_Submit", (26, 35), "up", (2, 11)),
    ],
)
def test_gpt4_leetcode_march_to_june(
    column: str, rates: tuple[int, int], direction: str, discordant: tuple[int, int]
) -> None:
    """GPT-4 0314 -> 0613 on 50 LeetCode problems: annotated; paired McNemar confirms the change."""
    need(LEETCODE)
    binomtest = pytest.importorskip("scipy.stats").binomtest
    rows = leetcode_rows()
    monitor = Monitor(Config(), threaded=False)
    alerts: list[Alert] = []
    for i, row in enumerate(rows):
        outcome = Outcome(
            task="leetcode",
            time=T0 + 60 * i,
            model=row["model"],
            task_id=row["id"],
            success="Accepted" in row[column],
            output_tokens=int(float(row["answer_token"])),
            latency_s=float(row["latency"]),
        )
        alerts += monitor.process(outcome)
    (note,) = [a for a in alerts if a.kind == "version_change"]
    assert (note.extra["before"], note.extra["after"], note.detected_at) == (MARCH, JUNE, T0 + 60 * 50)
    verdicts = {a.signal: a for a in alerts if a.kind == "version_comparison"}
    success = verdicts["success"]
    assert (round(success.baseline.mean * 50), round(success.current.mean * 50)) == rates
    assert success.extra["test"] == "mcnemar-exact" and success.extra["pairs"] == 50
    # The discordant pairs, counted from the file: passed in March only, passed in June only.
    march = {r["id"]: "Accepted" in r[column] for r in rows if r["model"] == MARCH}
    june = {r["id"]: "Accepted" in r[column] for r in rows if r["model"] == JUNE}
    assert (
        sum(march[k] and not june[k] for k in march),
        sum(june[k] and not march[k] for k in march),
    ) == discordant
    expected = binomtest(min(discordant), sum(discordant), 0.5).pvalue
    assert success.p_value == pytest.approx(expected, rel=1e-9)
    assert success.status == "confirmed" and success.direction == direction
    assert success.extra["q_value"] <= 0.05 and success.extra["bh_m"] == len(verdicts)
    summary = ", ".join(
        f"{a.signal} {a.status} {a.direction} p={a.p_value:.3g} q={a.extra['q_value']:.3g} "
        f"({a.extra['test']})"
        for a in verdicts.values()
    )
    print(f"\nLeetCode {column}: {summary}")


def sonnet_outcomes() -> list[Outcome]:
    """Each of the 20 runs as its test cases, passes shuffled with a fixed seed, in the file's order."""
    runs = yaml.safe_load(SONNET.read_text(encoding="utf-8"))
    rng = random.Random(2024)
    outcomes: list[Outcome] = []
    for run in runs:
        n = int(run["test_cases"])
        passes = round(run["pass_rate_2"] / 100 * n)
        results = [True] * passes + [False] * (n - passes)
        rng.shuffle(results)
        for success in results:
            outcomes.append(
                Outcome(
                    task="aider-benchmark",
                    time=T0 + 60 * len(outcomes),
                    model=str(run["model"]),
                    labels={"app.version": str(run["versions"])},
                    success=success,
                )
            )
    return outcomes


def test_aider_sonnet_reruns_raise_no_confirmed_alert() -> None:
    """20 Aider runs of one Sonnet across aider versions: versions are annotated, nothing is confirmed."""
    need(SONNET)
    monitor = Monitor(Config(), threaded=False)
    alerts: list[Alert] = []
    for outcome in sonnet_outcomes():
        alerts += monitor.process(outcome)
    assert [a for a in alerts if a.status == "confirmed"] == []
    notes = [a for a in alerts if a.kind == "version_change"]
    verdicts = [a for a in alerts if a.kind == "version_comparison"]
    assert len(notes) >= 7 and verdicts and all(a.status == "resolved" for a in verdicts)
    print(
        f"\nAider Sonnet: {len(notes)} version changes, {len(verdicts)} comparisons "
        f"(smallest p {min(a.p_value or 1.0 for a in verdicts):.3g}), "
        f"{monitor.stats.comparisons_dropped} dropped, drift alerts: "
        f"{[a.status for a in alerts if a.kind == 'drift']}"
    )


def test_aider_qwen_providers_against_ollama_fp16() -> None:
    """Qwen2.5-Coder-32B through 13 providers vs Ollama fp16 (BH at 0.05): only the 2k-context run differs."""
    need(QUANT)
    runs = yaml.safe_load(QUANT.read_text(encoding="utf-8"))
    baseline = next(r for r in runs if r["model"] == "Ollama: fp16")
    others = [r for r in runs if r is not baseline]

    def counts(run: dict[str, object]) -> tuple[int, int]:
        n = int(str(run["test_cases"]))
        return round(float(str(run["pass_rate_2"])) / 100 * n), n

    results = compare_runs(counts(baseline), [counts(r) for r in others], alpha=0.05)
    assert len(results) == 13
    by_model = {others[r.index]["model"]: r for r in results}
    assert {model for model, r in by_model.items() if r.differs} == {"Ollama: fp16, 2k ctx"}
    short = by_model["Ollama: fp16, 2k ctx"]
    assert short.comparison.effect == pytest.approx(69 / 132 - 94 / 132)
    assert short.comparison.p_value == pytest.approx(0.00155, abs=5e-5) and short.q_value < 0.05
    assert short.comparison.effect_ci[1] < 0
    # q2_K (61.7%) is 9.6 points down but within chance for 133 cases, even before the correction.
    q2 = by_model["Ollama: q2_K"]
    assert 0.05 < q2.comparison.p_value < 0.15 and q2.q_value > 0.5
    assert q2.comparison.effect_ci[0] < 0 < q2.comparison.effect_ci[1]
    stats = pytest.importorskip("scipy.stats")
    for model, r in by_model.items():
        run = next(x for x in others if x["model"] == model)
        (pb, nb), (pr, nr) = counts(baseline), counts(run)
        # The pooled two-proportion z-test is the chi-square test without continuity correction.
        chi2 = stats.chi2_contingency([[pb, nb - pb], [pr, nr - pr]], correction=False)
        assert r.comparison.p_value == pytest.approx(chi2.pvalue, rel=1e-6)
    q_scipy = stats.false_discovery_control([r.comparison.p_value for r in results])
    assert [r.q_value for r in results] == pytest.approx(list(q_scipy))
