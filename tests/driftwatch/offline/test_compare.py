"""driftwatch compare: the upgrade gate on real drift (GPT-4 prime) and real noise (Aider reruns)."""

from __future__ import annotations

import csv
import json
import math
import random
import re
from pathlib import Path

import pytest
import yaml

from driftwatch._cli.main import main
from driftwatch._offline.compare import SelectorError, compare_outcomes, parse_selector
from driftwatch._outcome import Outcome

SHARED = next(
    (p for p in (Path(__file__).resolve().parents[4] / "shared", Path("/work/shared")) if p.is_dir()),
    Path(__file__).resolve().parents[4] / "shared",
)
PRIME = SHARED / "data" / "llmdrift" / "PRIME_FULL_EVAL.csv"
SONNET = SHARED / "data" / "aider" / "sonnet-fine.yml"
MARCH, JUNE = "openaichat/gpt-4-0314", "openaichat/gpt-4-0613"


def need(path: Path) -> None:
    if not path.exists():
        pytest.fail(
            f"real data not found: {path} (expected in ../shared/data beside the clone or /work/shared)"
        )


def write_prime(path: Path) -> dict[str, dict[str, bool]]:
    """GPT-4 March and June answers to the same 1,000 prime questions as outcome JSONL; success by id."""
    need(PRIME)
    by_model: dict[str, dict[str, bool]] = {MARCH: {}, JUNE: {}}
    with PRIME.open(encoding="utf-8") as src, path.open("w") as fh:
        for i, r in enumerate(row for row in csv.DictReader(src) if row["model"] in by_model):
            said = re.findall(r"\[(yes|no)\]", r["answer"].lower())
            ok = bool(said) and said[-1] == r["ref_answer"].strip().lower()
            by_model[r["model"]][r["id"]] = ok
            record = {
                "time": 1_680_000_000 + 60 * i,
                "task": "prime",
                "task_id": r["id"],
                "model": r["model"].split("/")[-1],
                "success": ok,
                "latency_s": float(r["latency"]),
                "output_tokens": int(float(r["answer_token"])),
            }
            fh.write(json.dumps(record) + "\n")
    return by_model


def write_aider(path: Path) -> list[dict[str, object]]:
    """Aider's 20 Sonnet reruns, each expanded to its test cases (passes shuffled, seed 2024); no task ids."""
    need(SONNET)
    runs: list[dict[str, object]] = yaml.safe_load(SONNET.read_text(encoding="utf-8"))
    rng = random.Random(2024)
    with path.open("w") as fh:
        for r in runs:
            n = int(str(r["test_cases"]))
            passes = round(float(str(r["pass_rate_2"])) / 100 * n)
            results = [True] * passes + [False] * (n - passes)
            rng.shuffle(results)
            for ok in results:
                record = {
                    "time": f"{r['date']}T00:00:00Z",
                    "task": "aider-benchmark",
                    "model": r["model"],
                    "labels": {"app.version": str(r["versions"])},
                    "success": ok,
                }
                fh.write(json.dumps(record) + "\n")
    return runs


def test_gate_fails_on_gpt4_prime_march_to_june(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GPT-4 0314 -> 0613 on prime questions: paired exact McNemar, verdict worse, exit code 1."""
    binomtest = pytest.importorskip("scipy.stats").binomtest
    by_model = write_prime(tmp_path / "prime.jsonl")
    md, js = tmp_path / "comment.md", tmp_path / "compare.json"
    code = main(
        [
            "compare",
            str(tmp_path / "prime.jsonl"),
            "--baseline",
            "model=gpt-4-0314",
            "--candidate",
            "model=gpt-4-0613",
            "--markdown",
            str(md),
            "--json",
            str(js),
        ]
    )
    assert code == 1
    result = json.loads(js.read_text())
    assert result["verdict"] == "worse" and result["exit_code"] == 1 and result["pairs"] == 1000
    success = next(s for s in result["signals"] if s["signal"] == "success")
    march, june = by_model[MARCH], by_model[JUNE]
    lost = sum(march[k] and not june[k] for k in march)
    gained = sum(june[k] and not march[k] for k in march)
    assert success["test"] == "mcnemar-exact" and success["verdict"] == "worse" and success["gated"]
    assert success["baseline"]["mean"] == pytest.approx(sum(march.values()) / 1000)
    assert success["candidate"]["mean"] == pytest.approx(sum(june.values()) / 1000)
    assert success["p_value"] == pytest.approx(binomtest(gained, lost + gained, 0.5).pvalue, rel=1e-6)
    assert success["effect_ci"][1] < 0
    # Tokens have no better direction: reported as lower, never "worse" or "better".
    tokens = next(s for s in result["signals"] if s["signal"] == "output_tokens")
    assert tokens["verdict"] == "lower" and not tokens["gated"]
    assert "Candidate is worse" in md.read_text() and "| **success** |" in md.read_text()
    assert "worse" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("baseline", "candidate"),
    [
        ("version=0.39.1-dev", "version=0.51.2-dev"),
        ("until=2024-07-01T00:00:00Z", "since=2024-07-01T00:00:00Z"),
    ],
)
def test_gate_passes_on_aider_sonnet_reruns(tmp_path: Path, baseline: str, candidate: str) -> None:
    """Aider's Sonnet reruns (no real change): unpaired two-proportion test, not worse, exit code 0."""
    write_aider(tmp_path / "aider.jsonl")
    js = tmp_path / "compare.json"
    args = ["compare", str(tmp_path / "aider.jsonl"), "--baseline", baseline, "--candidate", candidate]
    assert main([*args, "--json", str(js)]) == 0
    result = json.loads(js.read_text())
    (success,) = result["signals"]
    assert success["test"] == "two-proportion-z" and not success["paired"]
    assert success["verdict"] != "worse" and result["verdict"] != "worse"
    assert result["baseline"]["n"] > 399 and result["candidate"]["n"] >= 399
    assert result["baseline"]["span"].startswith("2024-06-2") and result["candidate"]["span"] < "2024-09"


def synthetic(rate: float, n: int, seed: int, *, ids: bool = False, model: str = "a") -> list[Outcome]:
    rng = random.Random(seed)
    return [
        Outcome(
            task="t",
            time=float(i),
            model=model,
            task_id=str(i) if ids else None,
            success=rng.random() < rate,
            latency_s=math.exp(rng.gauss(0.0, 0.5)),
        )
        for i in range(n)
    ]


def test_tolerance_decides_a_small_significant_drop() -> None:
    """A clear 5-point drop is worse at tolerance 0 and at 0.02, inconclusive at tolerance 0.1."""
    base, cand = synthetic(0.80, 4000, 1), synthetic(0.75, 4000, 2)
    assert compare_outcomes(base, cand).worse
    assert compare_outcomes(base, cand, tolerance=0.02).worse
    loose = compare_outcomes(base, cand, tolerance=0.1)
    assert not loose.worse and loose.signals[0].verdict == "inconclusive"


def test_mde_matches_the_two_proportion_formula() -> None:
    """Unpaired pass rates: MDE = (z_0.975 + z_0.8) * sqrt(p(1-p)(1/n1 + 1/n2)) at the pooled rate."""
    base, cand = synthetic(0.5, 1000, 3), synthetic(0.5, 1000, 4)
    result = compare_outcomes(base, cand, signals=["success"])
    (s,) = result.signals
    pooled = (s.comparison.baseline.mean + s.comparison.current.mean) / 2
    assert s.mde == pytest.approx(
        (1.959964 + 0.841621) * math.sqrt(pooled * (1 - pooled) * 2 / 1000), rel=1e-4
    )


def test_bootstrap_is_seeded_and_reported() -> None:
    """The same seed gives the same latency interval, another seed another; the seed is in the JSON."""
    base, cand = synthetic(0.8, 300, 5), synthetic(0.8, 300, 6)

    def ci(seed: int) -> tuple[float, float]:
        (lat,) = [s for s in compare_outcomes(base, cand, seed=seed).signals if s.signal == "latency_s"]
        assert lat.test == "welch-t" and lat.interval == "percentile bootstrap"
        return lat.comparison.effect_ci

    assert ci(7) == ci(7) and ci(7) != ci(8)
    assert compare_outcomes(base, cand, seed=7).to_dict()["bootstrap"] == {"seed": 7, "resamples": 2000}


def test_pairs_by_task_id_when_present() -> None:
    """Same task ids on both sides: McNemar for pass/fail and a paired bootstrap for latency."""
    base, cand = synthetic(0.8, 200, 9, ids=True), synthetic(0.8, 200, 10, ids=True)
    result = compare_outcomes(base, cand)
    tests = {s.signal: (s.test, s.paired) for s in result.signals}
    assert tests == {"success": ("mcnemar-exact", True), "latency_s": ("paired-t", True)}
    assert result.pairs == 200


def test_repeated_task_ids_are_stratified() -> None:
    """A task run several times per side is a stratum: CMH for pass/fail, stratified t for latency."""
    base = synthetic(0.8, 200, 11, ids=True) + synthetic(0.8, 200, 12, ids=True)
    cand = synthetic(0.8, 200, 13, ids=True)
    result = compare_outcomes(base, cand, signals=["success", "latency_s"])
    tests = {s.signal: (s.test, s.paired, s.comparison.baseline.n) for s in result.signals}
    assert tests == {"success": ("cmh", True, 400), "latency_s": ("stratified-t", True, 400)}
    assert not result.worse


def test_selector_errors_name_the_valid_form() -> None:
    """A term without '=' or with an unknown key is refused with the keys that exist."""
    with pytest.raises(SelectorError, match="key=value"):
        parse_selector("gpt-4", "--baseline")
    with pytest.raises(SelectorError, match="unknown key 'modle'"):
        parse_selector("modle=x", "--baseline")
    with pytest.raises(SelectorError, match="RFC 3339"):
        parse_selector("since=yesterday", "--candidate")
    pick = parse_selector("model=a,label.region=eu,since=10,until=20")
    hit = Outcome(task="t", time=10.0, model="a", labels={"region": "eu"})
    assert pick(hit) and not pick(Outcome(task="t", time=20.0, model="a", labels={"region": "eu"}))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--baseline", "model=a"], "give both --baseline and --candidate"),
        (["--baseline", "model=a", "--candidate", "nonsense"], "is not key=value"),
        (["--baseline", "model=a", "--candidate", "model=zzz"], "selects no outcomes"),
        (
            ["--baseline", "model=a", "--candidate", "model=b", "--gate", "output_tokens"],
            "no better direction",
        ),
        (
            ["--baseline", "model=a", "--candidate", "model=b", "--signals", "succes"],
            "unknown signal 'succes'",
        ),
        (["--baseline", "model=a", "--candidate", "model=b", "--alpha", "5"], "--alpha"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """Bad selectors, signals and numbers exit 2 with a message saying what is valid."""
    path = tmp_path / "o.jsonl"
    path.write_text(
        "\n".join(json.dumps(o.to_dict()) for o in synthetic(0.8, 20, 1) + synthetic(0.8, 20, 2, model="b"))
    )
    assert main(["compare", str(path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_two_files_and_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Baseline and candidate from two files; a bad line is reported with its line number and skipped."""
    a, b = tmp_path / "main.jsonl", tmp_path / "pr.jsonl"
    a.write_text("\n".join(json.dumps(o.to_dict()) for o in synthetic(0.9, 500, 1)) + "\n")
    b.write_text("{not json\n" + "\n".join(json.dumps(o.to_dict()) for o in synthetic(0.6, 500, 2)) + "\n")
    assert main(["compare", str(a), str(b)]) == 1
    captured = capsys.readouterr()
    assert f"{b}:1: not valid JSON" in captured.err and "verdict: worse" in captured.out
    assert main(["compare", str(a), str(tmp_path / "missing.jsonl")]) == 2


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`driftwatch compare --help` explains the exit codes and shows an example command line."""
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "example" in out and "driftwatch compare outcomes.jsonl --baseline" in out and "Exit code 1" in out


def test_unpartnered_outcomes_are_counted() -> None:
    """Task ids on one side only are left out of the pairs, and the result says how many."""
    base = synthetic(0.8, 100, 21, ids=True)
    cand = synthetic(0.8, 120, 22, ids=True)
    result = compare_outcomes(base, cand, signals=["success"])
    assert result.pairs == 100 and result.signals[0].comparison.baseline.n == 100
    assert "0 baseline and 20 candidate outcomes without a partner" in result.notes[0]


SEEDS = {"code-generation": (25, 18, 19), "long-context": (10, 5, 8), "tool-use": (5, 4, 4)}


def write_seeds(path: Path, *, ids: bool = True) -> None:
    """The seeds' three-dimension comparison: model A and B on the same cases, passes as counted."""
    t, lines = 1_770_000_000, []
    for task, (n, before, after) in SEEDS.items():
        for model, passes in (("A", before), ("B", after)):
            for i in range(n):
                record = {"time": t, "task": task, "model": model, "success": i < passes}
                if ids:
                    record["task_id"] = f"{task}-{i}"
                lines.append(json.dumps(record))
                t += 60
    path.write_text("\n".join(lines) + "\n")


def test_by_task_on_the_seeds_example(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """18/25→19/25, 5/10→8/10, 4/5→4/5: a row per task plus the pooled one, MDEs and plain words, exit 0."""
    path, out = tmp_path / "seeds.jsonl", tmp_path / "c.json"
    write_seeds(path)
    argv = ["compare", str(path), "--baseline", "model=A", "--candidate", "model=B", "--by", "task"]
    assert main([*argv, "--json", str(out), "--markdown", str(tmp_path / "c.md")]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["by"] == ["task"] and [r["key"]["task"] for r in doc["rows"]] == list(SEEDS)
    rates = {
        r["key"]["task"]: (r["signals"][0]["baseline"]["mean"], r["signals"][0]["candidate"]["mean"])
        for r in doc["rows"]
    }
    assert rates == {"code-generation": (0.72, 0.76), "long-context": (0.5, 0.8), "tool-use": (0.8, 0.8)}
    assert all(
        r["verdict"] == "inconclusive" and r["signals"][0]["test"] == "mcnemar-exact" for r in doc["rows"]
    )
    words = {r["key"]["task"]: r["words"] for r in doc["rows"]}
    assert words["code-generation"] == "25 pairs: a change under 30 points cannot be seen"
    assert words["long-context"].startswith("10 pairs: too few to see any change")
    assert doc["signals"][0]["effect"] == pytest.approx(0.10) and "40 pairs" in doc["words"]
    assert "task=long-context" in text and "in words:" in text
    assert "`task=tool-use`" in (tmp_path / "c.md").read_text()
    # Unpaired (no task ids): 10 cases a side see 49.5 points at best.
    write_seeds(path, ids=False)
    assert main([*argv, "--json", str(out)]) == 0
    rows = {r["key"]["task"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["long-context"]["words"] == "10 cases a side: a change under 49.5 points cannot be seen"
    assert rows["long-context"]["signals"][0]["test"] == "two-proportion-z"


def test_a_row_worse_fails_the_gate_when_the_pool_does_not() -> None:
    """Task a drops 90%→50% while task b rises 50%→90%: pooled inconclusive, row a worse, gate fails."""
    base = [
        Outcome(task=t, time=float(i), model="A", success=(i % 10) < k)
        for t, k in (("a", 9), ("b", 5))
        for i in range(100)
    ]
    cand = [
        Outcome(task=t, time=float(i), model="B", success=(i % 10) < k)
        for t, k in (("a", 5), ("b", 9))
        for i in range(100)
    ]
    result = compare_outcomes(base, cand, signals=["success"], by=["task"])
    assert result.signals[0].verdict == "inconclusive"
    assert [(r.label, r.signals[0].verdict) for r in result.rows] == [
        ("task=a", "worse"),
        ("task=b", "better"),
    ]
    assert result.worse and result.verdict == "worse"
    assert result.to_dict()["exit_code"] == 1
    q = [result.signals[0].q_value] + [r.signals[0].q_value for r in result.rows]
    p = [result.signals[0].comparison.p_value] + [r.signals[0].comparison.p_value for r in result.rows]
    from driftwatch._stats import benjamini_hochberg

    assert q == pytest.approx(benjamini_hochberg(p))


def test_by_label_and_combinations_and_one_sided_rows() -> None:
    """--by label.region,model crosses keys; a value on one side only is a note, not a row."""
    base = synthetic(0.8, 60, 1)
    cand = synthetic(0.8, 60, 2, model="b")
    for i, o in enumerate(base + cand):
        o.labels["region"] = "eu" if i % 2 else "us"
    cand.append(Outcome(task="t", time=1.0, model="b", success=True, labels={"region": "ap"}))
    result = compare_outcomes(base, cand, signals=["success"], by=["label.region"])
    assert [r.label for r in result.rows] == ["label.region=eu", "label.region=us"]
    assert any("label.region=ap: 1 outcomes on the candidate side only" in n for n in result.notes)
    with pytest.raises(SelectorError, match="unknown key 'colour'"):
        compare_outcomes(base, cand, by=["colour"])


def test_by_unknown_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--by with an unknown key is a usage error naming the valid keys."""
    path = tmp_path / "o.jsonl"
    write_seeds(path)
    assert main(["compare", str(path), "--baseline", "model=A", "--candidate", "model=B", "--by", "tsk"]) == 2
    assert "expected task, model, service, kind, version or label.NAME" in capsys.readouterr().err


def test_cmh_with_one_stratum_is_the_pooled_z_test() -> None:
    """One stratum: the CMH statistic is the pooled z² times (n-1)/n, and the effect the plain difference."""
    from driftwatch._offline.compare import compare_stratified_binary
    from driftwatch._stats import Moments, compare_proportions

    cmh = compare_stratified_binary([(100, 80, 120, 84)])
    z = compare_proportions(Moments(100, 0.8, 100 * 0.16), Moments(120, 0.7, 120 * 0.21), "two-sided")
    assert cmh.effect == pytest.approx(-0.1)
    zc = statistics_z(cmh.p_value)
    zz = statistics_z(z.p_value)
    assert zc**2 == pytest.approx(zz**2 * 219 / 220, rel=1e-9)


def statistics_z(p: float) -> float:
    """|z| of a two-sided normal p-value."""
    from statistics import NormalDist

    return -NormalDist().inv_cdf(p / 2)


def test_stratified_means_weight_tasks_by_counts() -> None:
    """Numeric signal, recurring tasks: effect = Σ w·(after − before) / Σ w with w = n0·n1/(n0+n1)."""
    base = [Outcome(task="t", time=0.0, task_id="x", score=s) for s in (1.0, 2.0, 3.0)]
    base += [Outcome(task="t", time=0.0, task_id="y", score=s) for s in (10.0, 11.0)]
    cand = [Outcome(task="t", time=0.0, task_id="x", score=s) for s in (2.0, 3.0)]
    cand += [Outcome(task="t", time=0.0, task_id="y", score=s) for s in (10.0, 12.0, 14.0)]
    (s,) = compare_outcomes(base, cand, signals=["score"]).signals
    w_x, w_y = 3 * 2 / 5, 2 * 3 / 5
    assert s.test == "stratified-t"
    assert s.comparison.effect == pytest.approx((w_x * (2.5 - 2.0) + w_y * (12.0 - 10.5)) / (w_x + w_y))


def test_a_shift_of_the_task_mix_alone_is_not_worse() -> None:
    """Recurring tasks, the candidate drawing mostly hard ones at unchanged ability: within-task (CMH)
    finds no change where the raw pass rate falls; a real drop of ability is found."""
    rng = random.Random(5)
    rates = [0.95 if i % 2 else 0.3 for i in range(40)]  # odd tasks easy, even tasks hard

    def side(n: int, hard_share: float, drop: float) -> list[Outcome]:
        out = []
        for k in range(n):
            hard = rng.random() < hard_share
            task = 2 * rng.randrange(20) + (0 if hard else 1)
            ok = rng.random() < rates[task] - drop
            out.append(Outcome(task="suite", time=float(k), task_id=f"t{task}#{k}", success=ok))
        return out

    def strip(outcomes: list[Outcome]) -> list[Outcome]:  # t12#7 -> t12: the task recurs
        for o in outcomes:
            o.task_id = (o.task_id or "").split("#")[0]
        return outcomes

    base, cand = strip(side(800, 0.5, 0.0)), strip(side(800, 0.8, 0.0))
    raw = [sum(bool(o.success) for o in outcomes) / 800 for outcomes in (base, cand)]
    assert raw[1] < raw[0] - 0.1  # the raw pass rate fell with the mix
    mixed = compare_outcomes(base, cand, signals=["success"])
    assert [s.test for s in mixed.signals] == ["cmh"] and not mixed.worse
    dropped = compare_outcomes(base, strip(side(800, 0.5, 0.15)), signals=["success"])
    assert dropped.worse
