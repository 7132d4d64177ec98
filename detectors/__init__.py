"""Streaming change detection: calibrated detectors in River's form, per signal type."""

from __future__ import annotations

from driftwatch.detectors._lagged_cusum import DEFAULT_LAG, DEFAULT_SHIFTS, DEFAULT_WARMUP, LaggedCusum

__all__ = ["DEFAULT_LAG", "DEFAULT_SHIFTS", "DEFAULT_WARMUP", "LaggedCusum"]
