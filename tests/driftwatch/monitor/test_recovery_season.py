"""An open page's recovery check when a seasonal profile appears (issue 16): its baseline and changed
level are re-expressed in the profile, so a page raised on a cycle before the profile is not paged
again as a "partial recovery" against a baseline from a trough (seeded)."""

from __future__ import annotations

import math

import numpy as np

from driftwatch import Config, Monitor, Outcome

PER_DAY = 2000


def test_a_cycle_paged_before_its_profile_is_not_paged_again_as_a_partial_recovery() -> None:
    """±25% daily latency cycle at 2,000 a day, 20 streams of 6,000 (the profile is shown after
    about 4,300): at most 6 pages as a partial recovery of an open page (4; before the
    re-expression 10, of 66 pages)."""
    rng = np.random.default_rng(20261231)
    partial = 0
    for _ in range(20):
        t = np.arange(6000) + rng.integers(0, PER_DAY)
        values = math.log(1.25) * np.sin(2 * np.pi * t / PER_DAY) + rng.normal(0.0, 0.5, 6000)
        monitor = Monitor(Config(signals=["latency_s"], console=False), threaded=False)
        for i, v in enumerate(values):
            outcome = Outcome(task="t", time=i * 86400 / PER_DAY, latency_s=4.0 * math.exp(float(v)))
            for alert in monitor.process(outcome):
                if alert.status == "confirmed" and "partial_recovery_of" in alert.extra:
                    partial += 1
    assert partial <= 6
