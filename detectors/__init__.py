"""Streaming change detection: calibrated detectors in River's form, per signal type."""

from __future__ import annotations

from driftwatch.detectors._lagged_sr import DEFAULT_LAG, DEFAULT_SHIFTS, DEFAULT_WARMUP, LaggedSR

__all__ = ["DEFAULT_LAG", "DEFAULT_SHIFTS", "DEFAULT_WARMUP", "LaggedSR"]
