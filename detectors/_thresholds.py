"""Calibrated LaggedSR thresholds: a shipped table (``thresholds.json``), read once, interpolated."""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

__all__ = ["threshold_for"]


@functools.cache
def _table() -> dict[str, Any]:
    text = resources.files("driftwatch.detectors").joinpath("thresholds.json").read_text("utf-8")
    table: dict[str, Any] = json.loads(text)
    return table


def threshold_for(
    kind: str, base_rate: float, budget: float, shifts: Sequence[float], early: bool = False
) -> float:
    """The LLR threshold for a bank watching ``kind`` values at ``base_rate`` within ``budget``.

    ``early``: the threshold for the first ``EARLY_WINDOW`` observations after the warm-up (the
    table's fourth column), calibrated to hold the budget there on its own; a table without it
    (made before the early threshold) has one threshold for both.

    Binary thresholds are interpolated linearly between calibrated base rates (they differ between
    base rates because the 0/1 distribution is skewed). A budget other than the calibrated one is
    shifted by ``log(calibrated / budget)``: a CUSUM's false-alarm run length grows about as
    ``exp(threshold)``. Other shift sets than the calibrated one should be recalibrated.
    """
    table = _table()
    col = 3 if early and len(table["numeric"]) > 3 else 0
    if kind == "binary":
        points = sorted((float(p), float(v[col])) for p, v in table["binary"].items())
        p = min(max(base_rate, points[0][0]), points[-1][0])
        for (p0, h0), (p1, h1) in itertools.pairwise(points):
            if p0 <= p <= p1:
                base = h0 + (h1 - h0) * (p - p0) / (p1 - p0) if p1 > p0 else h0
                break
        else:
            base = points[-1][1]
    else:
        base = float(table["numeric"][col])
    extra_arms = len(shifts) / len(table["shifts"])
    if extra_arms > 1:
        # An uncalibrated bank with more arms alarms more often; log(k) covers the union of k times as many.
        base += math.log(extra_arms)
    return base + math.log(float(table["budget"]) / budget)
