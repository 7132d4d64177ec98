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


def test_repeated_task_ids_pair_their_means() -> None:
    """A task run several times per side is paired on its pass rate (paired t), not by McNemar."""
    base = synthetic(0.8, 200, 11, ids=True) + synthetic(0.8, 200, 12, ids=True)
    cand = synthetic(0.8, 200, 13, ids=True)
    (s,) = compare_outcomes(base, cand, signals=["success"]).signals
    assert s.test == "paired-t" and s.comparison.baseline.n == 200


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
