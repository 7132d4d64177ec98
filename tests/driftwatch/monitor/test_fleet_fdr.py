"""Fleet control in stage two (benchmarks/fleet_fdr.py): e-BH over the candidates' likelihood ratios
is offline Benjamini–Hochberg on p = 1/e, and never pages what the lone test would not."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

from fleet_fdr import bh, e_bh, replication


def test_e_bh_is_offline_bh_on_the_same_p_values_and_a_subset_of_lone_pages() -> None:
    rng = random.Random(20261203)
    for _ in range(2000):
        m = rng.randint(1, 40)
        e = [
            rng.choice([0.0, rng.expovariate(1.0), rng.expovariate(0.02), 1e6 * rng.random()])
            for _ in range(m)
        ]
        p = [min(1.0, 1 / x) if x > 0 else 1.0 for x in e]
        assert e_bh(e, 0.05) == bh(p, 0.05)
        assert e_bh(e, 0.05) <= {i for i, x in enumerate(e) if x >= 1 / 0.05}


def test_fleet_simulation_pages_real_changes_under_both_rules() -> None:
    out = replication(10, 0.5, seed=3)
    changed = out["_changed"][0]
    for rule in ("lone", "e-BH"):
        false, pages, steps = out[rule]
        assert len(steps) == changed and pages >= changed and false <= pages
