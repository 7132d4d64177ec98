"""compare --plan: exact power of the two-proportion z-test and exact McNemar, checked by simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from driftwatch._cli.main import main
from driftwatch._offline.plan import (
    mde_mcnemar,
    mde_two_proportions,
    plan_cases,
    power_mcnemar,
    power_two_proportions,
)
from driftwatch._stats import binomial_two_sided


def simulated_z_power(p0: float, p1: float, n: int, reps: int, seed: int) -> float:
    """Share of seeded simulated comparisons the pooled two-proportion z-test rejects at 0.05."""
    rng = np.random.default_rng(seed)
    k0, k1 = rng.binomial(n, p0, reps), rng.binomial(n, p1, reps)
    pooled = (k0 + k1) / (2 * n)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * 2 / n)
    return float(np.mean(np.abs(k1 - k0) / n / se >= 1.959963984540054))


def simulated_mcnemar_power(p0: float, p1: float, psi: float, n: int, reps: int, seed: int) -> float:
    """Share of seeded simulated paired samples the exact McNemar test rejects at 0.05."""
    rng = np.random.default_rng(seed)
    gained, lost = (psi + (p1 - p0)) / 2, (psi - (p1 - p0)) / 2
    counts = rng.multinomial(n, [gained, lost, 1 - psi], reps)
    return float(np.mean([binomial_two_sided(int(g), int(g + lo)) <= 0.05 for g, lo, _ in counts]))


@pytest.mark.parametrize(
    ("p0", "p1", "n"), [(0.8, 0.7, 150), (0.72, 0.52, 25), (0.5, 0.8, 10), (0.9, 0.8, 292)]
)
def test_two_proportion_power_matches_simulation(p0: float, p1: float, n: int) -> None:
    """Exact power of the unpaired test is within 5% (relative) of 20,000 seeded simulations."""
    exact = power_two_proportions(p0, p1, n, n)
    assert simulated_z_power(p0, p1, n, 20_000, 7) == pytest.approx(exact, rel=0.05, abs=0.005)


@pytest.mark.parametrize(
    ("p0", "p1", "psi", "n"), [(0.8, 0.7, 0.2, 60), (0.8, 0.7, 0.38, 313), (0.5, 0.8, 0.4, 10)]
)
def test_mcnemar_power_matches_simulation(p0: float, p1: float, psi: float, n: int) -> None:
    """Exact McNemar power is within 5% (relative) of 5,000 seeded simulations."""
    exact = power_mcnemar(p0, p1, psi, n)
    assert simulated_mcnemar_power(p0, p1, psi, n, 5_000, 11) == pytest.approx(exact, rel=0.05, abs=0.01)


def test_plans_reach_the_power_by_simulation() -> None:
    """At the planned sizes, simulated power is 80% within 5%; one case fewer is below 80% exactly."""
    unpaired = plan_cases(0.8, -0.1)
    paired = plan_cases(0.8, -0.1, paired=True, discordance=0.12)
    assert unpaired.cases == 292 and paired.cases == 95
    assert simulated_z_power(0.8, 0.7, 292, 20_000, 3) == pytest.approx(0.8, rel=0.05)
    assert simulated_mcnemar_power(0.8, 0.7, 0.12, 95, 5_000, 4) == pytest.approx(0.8, rel=0.05)
    assert power_two_proportions(0.8, 0.7, 291, 291) < 0.8 <= unpaired.achieved
    # Textbook normal formula for 80% vs 70%: n = (z.975 √(2 p̄ q̄) + z.8 √(p0q0 + p1q1))² / δ² ≈ 294.
    normal = (1.959964 * math.sqrt(2 * 0.75 * 0.25) + 0.841621 * math.sqrt(0.16 + 0.21)) ** 2 / 0.01
    assert abs(unpaired.cases - normal) / normal < 0.02


def test_small_samples_cannot_see_anything() -> None:
    """5 or 10 pairs never reach 80% power; 10 cases a side see 49.5 points, 25 pairs 30 at most."""
    assert math.isinf(mde_mcnemar(0.8, 5)) and math.isinf(mde_mcnemar(0.5, 10))
    assert mde_two_proportions(0.5, 10, 10) == pytest.approx(0.495)
    assert mde_mcnemar(0.72, 25, 0.04) == pytest.approx(0.30)


def test_plan_cli_without_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """compare --plan --rate 0.8 --effect 0.1 prints the unpaired and paired sizes and writes JSON."""
    out = tmp_path / "plan.json"
    assert (
        main(
            [
                "compare",
                "--plan",
                "--rate",
                "0.8",
                "--effect",
                "0.1",
                "--discordance",
                "0.12",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "292 cases a side" in text and "313 pairs" in text and "95 pairs" in text
    assert [p["cases_per_side"] for p in json.loads(out.read_text())["plans"]] == [292, 313, 95]
    assert main(["compare", "--plan", "--rate", "0.8"]) == 2
    assert "--plan needs --effect" in capsys.readouterr().err
    assert main(["compare", "--plan", "--effect", "0.1"]) == 2


def test_plan_cli_with_an_outcome_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """With the seeds' file and --by task: how many more pairs each dimension needs to see 20 points."""
    from tests.driftwatch.offline.test_compare import write_seeds

    path, out = tmp_path / "seeds.jsonl", tmp_path / "plan.json"
    write_seeds(path)
    argv = ["compare", str(path), "--baseline", "model=A", "--candidate", "model=B", "--by", "task"]
    assert main([*argv, "--plan", "--effect", "0.2", "--json", str(out)]) == 0
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["all"]["more"] == 0 and rows["task=long-context"]["more"] == 59
    assert rows["task=tool-use"]["paired"] and rows["task=code-generation"]["have"] == 25
    assert "59 more pairs" in capsys.readouterr().out
