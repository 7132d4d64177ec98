"""Stage one over a run of values in one loop: ``advance``, ``LaggedSR.update`` for many values.

The monitor drains its queue in batches; a quiet (stream, signal) then takes the batch's values in
one call instead of one ``update`` each (with the seasonal profile's ``note``/``observe``, the
baseline's and the dispersion's ``add`` and ``_step`` under it). The arithmetic is ``update``'s,
in the same order on the same floats, so every statistic, alarm and change-time estimate is the
same to the bit (``tests/detectors/test_batch.py`` checks it against ``update`` value by value);
only the per-value calls and attribute look-ups are gone. Anything rare goes through the
detector's own methods: a finished dispersion block (every ``DISPERSION_BLOCK`` values), a refit of
the seasonal offsets (every ``REFRESH`` values learnt). Whatever ``advance`` does not cover (the
warm-up, the value after an alarm, a seasonal restart, ``lag=0``) it leaves to ``update``: it
stops before such a value, and ``feed`` hands that one value to ``update``. After the warm-up,
``feed`` cuts a run at the end of the early threshold's window (``EARLY_WINDOW``), so that each
``advance`` watches against one threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from driftwatch.detectors._dispersion import _SCALE_KEEP, DISPERSION_BATCH, DISPERSION_BLOCK
from driftwatch.detectors._lagged_sr import _P_FLOOR, _R_MAX, EARLY_WINDOW, LaggedSR
from driftwatch.detectors._seasonal import CELL_CAP, REFRESH, _cells

__all__ = ["Gate", "advance", "feed", "steady"]

_DECAY = (CELL_CAP - 1) / CELL_CAP  # as _Factor.add
_P_CEIL = 1 - _P_FLOOR  # the expressions of LaggedSR._step, as constants
_Q_CEIL = 1 - 1e-4


class Gate(Protocol):
    """Work of the caller's that goes with each value, before the detector's update (the monitor's
    recovery check of an open alert): ``blocked()`` says, before a value, that it must stop there
    (the value needs the caller's general path); ``step(seen, t)`` takes the value as the detector
    watches it (``LaggedSR.adjusted``: minus its seasonal offset)."""

    def blocked(self) -> bool: ...

    def step(self, seen: float, t: float) -> None: ...


def steady(det: LaggedSR) -> bool:
    """Whether ``advance`` can take ``det``'s next value (else ``update`` must)."""
    season = det._season
    return (
        not det._drift_detected
        and det._early is None
        and det._n >= det.warmup  # the lagged statistic in force (``feed`` cuts at the early window's end)
        and det.lag > 0
        and det._h is not None
        and (season is None or (not season.changed and season.delay > 0))
        and (season is None or season.active == getattr(det, "_seasonal_active", False))
    )


def feed(
    det: LaggedSR, xs: Sequence[float], ts: Sequence[float], start: int, stop: int, gate: Gate | None = None
) -> int:
    """``det.update(xs[i], ts[i])`` for i from ``start`` (after ``gate.step``), stopping right after
    an alarm or before a value ``gate`` blocks; the index after the last value taken."""
    i = start
    while i < stop:
        if steady(det):
            # One threshold per run: the early one up to observation warmup + EARLY_WINDOW, then the other.
            left = det.warmup + EARLY_WINDOW - det._n
            i = advance(det, xs, ts, i, stop if left <= 0 else min(stop, i + left), gate)
        elif gate is not None and gate.blocked():
            break
        else:
            if gate is not None:
                gate.step(det.adjusted(xs[i], ts[i]), ts[i])
            det.update(xs[i], ts[i])
            i += 1
        if det._drift_detected or (gate is not None and i < stop and gate.blocked()):
            break
    return i


def advance(
    det: LaggedSR, xs: Sequence[float], ts: Sequence[float], start: int, stop: int, gate: Gate | None = None
) -> int:
    """``update`` for ``xs[start:stop]`` (floats; times ``ts``) while ``steady``, each value after
    ``gate.step``; returns the index of the first value not taken: after an alarm, before a
    seasonal restart or a value ``gate`` blocks, or ``stop``."""
    if start >= stop:
        return start
    # -- the detector's state, as locals ---------------------------------------------------------
    # The threshold in force, as _step picks it (``feed`` keeps a run on one side of the switch).
    h = det._h if det._n >= det.warmup + EARLY_WINDOW else det._h_early
    assert h is not None
    if det._limit_for != h:  # as _step: the limit follows the threshold in force
        det._limit = math.exp(det._log_k + h) if h != math.inf else math.inf
        det._limit_for = h
    limit = det._limit
    binary = det.kind == "binary"
    lag = det.lag
    pending = det._pending
    popleft, push = pending.popleft, pending.append
    det_n = det._n
    whole, ref = det._all, det._ref
    all_n, all_mean, all_m2 = whole.n, whole.mean, whole.m2
    ref_n, ref_mean, ref_m2 = ref.n, ref.mean, ref.m2
    arms = det._arms
    # Per alternative: its index, and for numeric values its shift with the direction's sign (the
    # same product as ``shift * -z``: a sign flip is exact) and half its square; for pass/fail its
    # direction, shift and whether it is off.
    numeric_arms = [
        (k, arm.shift if arm.direction == "up" else -arm.shift, arm.shift * arm.shift / 2)
        for k, arm in enumerate(arms)
    ]
    binary_arms = [(k, arm.direction == "up", arm.shift, arm.off) for k, arm in enumerate(arms)]
    rs = [arm.r for arm in arms]
    ws = [arm.w for arm in arms]
    four = not binary and len(arms) == 4  # the default two shifts, both ways: unrolled below
    if four:
        (_, s0, h0), (_, s1, h1), (_, s2, h2), (_, s3, h3) = numeric_arms
        r0, r1, r2, r3 = rs
        w0, w1, w2, w3 = ws
    marks = [arm.mark for arm in arms]
    zero_ats = [arm.zero_at for arm in arms]
    zero_times = [arm.zero_time for arm in arms]
    disp = det._disp
    disp_on = disp.enabled
    inv = 1.0 / disp._kappa
    scaled = inv != 1.0  # x * 1.0 is x: the multiplication is skipped, not changed
    acc = disp._a
    a_n, a_sx, a_sy, a_sxx, a_sxy = acc
    a_last, a_sq = disp._a_last, disp._a_sq
    k_sum, k_count = disp._k_sum, disp._k_count
    vt_skip, vt_y, vt_end = disp._vt_skip, disp._y, disp._y_end  # the variance-time reading
    det_active = getattr(det, "_seasonal_active", False)  # a flip is update's (forget_scales)
    added, last_add_n = False, 0  # whether a value entered the baseline (Dispersion.add ran), at which n
    season = det._season
    seasonal = season is not None
    if season is not None:
        by_hour, by_day = season._factors
        h_count, d_count, h_applied, d_applied = by_hour.count, by_day.count, by_hour.applied, by_day.applied
        h_off, d_off = by_hour.offsets, by_day.offsets
        h_n, h_mean, h_m2, h_bins = by_hour.n, by_hour.mean, by_hour.m2, by_hour.bins
        d_n, d_mean, d_m2, d_bins = by_day.n, by_day.mean, by_day.m2, by_day.bins
        active = season.active
        note_clock, learn_clock = season._note_clock, season._learn_clock
        # Each clock's hour as its bounds and the bins it selects (kept until a value leaves it).
        n_start, n_cells = note_clock.start, note_clock.cells
        n_end, hour, weekday = n_start + 3_600.0, n_cells[0], n_cells[2]
        l_start, l_cells = learn_clock.start, learn_clock.cells
        l_end, h_cell, d_cell = (
            l_start + 3_600.0,
            l_cells[1] * h_bins + l_cells[0],
            l_cells[3] * d_bins + l_cells[2],
        )
        ring, head, filled, delay = season._ring, season._head, season._filled, season.delay
        first, last, count = season._first, season._last, season._count
    isfinite, exp, sqrt = math.isfinite, math.exp, math.sqrt
    fired = False
    total = det._sum_r
    i = start
    while i < stop:
        if gate is not None and gate.blocked():
            break
        x = xs[i]
        t = ts[i]
        value = x
        if season is not None and isfinite(t):
            # Seasonal.note(t): counted for the restart check, the offset in use subtracted.
            if not n_start <= t < n_end:
                n_start, n_cells = _cells(t)
                n_end, hour, weekday = n_start + 3_600.0, n_cells[0], n_cells[2]
            h_count[hour] += 1
            d_count[weekday] += 1
            if active:
                offset = 0.0
                if h_off is not None:
                    h_applied[hour] += h_off[hour]
                    offset += h_off[hour]
                if d_off is not None:
                    d_applied[weekday] += d_off[weekday]
                    offset += d_off[weekday]
                value -= offset
        if gate is not None:
            # The value as the detector watches it (LaggedSR.adjusted(x, t)), before the value it
            # pushes out of the delay ring is learnt: a refit there is news for the next value, as
            # in ``update`` (the recovery check re-expresses itself when the profile moves).
            gate.step(value, t)
        if season is not None and isfinite(t):
            # Seasonal.observe(x, t): into the delay ring; the value it pushes out is learnt.
            if filled < delay:
                j = 2 * ((head + filled) % delay)
                ring[j], ring[j + 1] = x, t
                filled += 1
            else:
                j = 2 * head
                old_x, old_t = ring[j], ring[j + 1]
                ring[j], ring[j + 1] = x, t
                head += 1
                if head == delay:  # (head + 1) % delay
                    head = 0
                if not l_start <= old_t < l_end:
                    l_start, l_cells = _cells(old_t)
                    l_end = l_start + 3_600.0
                    h_cell, d_cell = l_cells[1] * h_bins + l_cells[0], l_cells[3] * d_bins + l_cells[2]
                # _Factor.add for the hour of day, then the day of the week.
                c = h_n[h_cell]
                if c >= CELL_CAP:
                    h_m2[h_cell] *= _DECAY
                else:
                    c = h_n[h_cell] = c + 1
                mean = h_mean[h_cell]
                delta = old_x - mean
                mean += delta / c
                h_mean[h_cell] = mean
                h_m2[h_cell] += delta * (old_x - mean)
                c = d_n[d_cell]
                if c >= CELL_CAP:
                    d_m2[d_cell] *= _DECAY
                else:
                    c = d_n[d_cell] = c + 1
                mean = d_mean[d_cell]
                delta = old_x - mean
                mean += delta / c
                d_mean[d_cell] = mean
                d_m2[d_cell] += delta * (old_x - mean)
                if old_t < first:
                    first = old_t
                if old_t > last:
                    last = old_t
                count += 1
                if not count % REFRESH:
                    season._first, season._last, season._count = first, last, count
                    season._refresh()
                    active, h_off, d_off = season.active, by_hour.offsets, by_day.offsets
        # The detector's moments (Moments.add, as update inlines it).
        det_n += 1
        all_n += 1
        delta = value - all_mean
        all_mean += delta / all_n
        all_m2 += delta * (value - all_mean)
        if len(pending) >= lag:
            old = popleft()
            ref_n += 1
            delta = old - ref_mean
            ref_mean += delta / ref_n
            ref_m2 += delta * (old - ref_mean)
            if disp_on:  # Dispersion.add(old, ref, n)
                added, last_add_n = True, det_n
                if a_last is not None:
                    a_n += 1
                    a_sx += a_last
                    a_sy += old
                    a_sxx += a_last * a_last
                    a_sxy += old * a_last
                    a_sq += old * old
                a_last = old
                k_sum += old
                k_count += 1
                vt_skip -= 1
                if k_count == DISPERSION_BLOCK:
                    y = k_sum / DISPERSION_BLOCK
                    k_sum, k_count = 0.0, 0
                    if vt_skip <= 0:
                        vt_y.append(y)
                        vt_end.append(all_n - lag)
                    if len(vt_y) > 2 * _SCALE_KEEP:
                        del vt_y[:_SCALE_KEEP], vt_end[:_SCALE_KEEP]
                    ref.n, ref.mean, ref.m2 = ref_n, ref_mean, ref_m2
                    acc[:] = a_n, a_sx, a_sy, a_sxx, a_sxy
                    disp._ref, disp._n, disp._a_last, disp._a_sq = ref, det_n, a_last, a_sq
                    disp._k_sum, disp._k_count = k_sum, k_count
                    disp._block(y)
                    disp._b_sum += y
                    disp._b_count += DISPERSION_BLOCK
                    if disp._b_count >= DISPERSION_BATCH:
                        disp._batch_done()
                    inv = 1.0 / disp._kappa
                    scaled = inv != 1.0
        # LaggedSR._step(value, t): each alternative's likelihood ratio, then its R and CUSUM.
        m = ref_mean
        total = 0.0
        mark: tuple[int, float, float] | None = None
        if binary:
            p = m
            if p < _P_FLOOR:  # min(max(m, _P_FLOOR), 1 - _P_FLOOR)
                p = _P_FLOOR
            elif p > _P_CEIL:
                p = _P_CEIL
            sd = sqrt(p * (1 - p))
            hit = value > 0.5
            no_up, no_down = m >= _P_CEIL, m <= _P_FLOOR
            for k, up, shift, off in binary_arms:
                if off or (no_up if up else no_down):
                    ratio = 0.0
                else:
                    q = p + shift * sd if up else p - shift * sd
                    if q < 1e-4:  # min(max(q, 1e-4), 1 - 1e-4)
                        q = 1e-4
                    elif q > _Q_CEIL:
                        q = _Q_CEIL
                    ratio = q / p if hit else (1 - q) / (1 - p)
                    if scaled:
                        ratio **= inv
                r = (1.0 + rs[k]) * ratio
                if r > _R_MAX:
                    r = _R_MAX
                rs[k] = r
                total += r
                w = ws[k] * ratio
                if w > _R_MAX:
                    w = _R_MAX
                if w <= 1.0:
                    ws[k] = 1.0
                    if mark is None:
                        mark = (all_n, all_mean, all_m2)
                    marks[k] = mark
                    zero_ats[k] = det_n
                    zero_times[k] = t
                else:
                    ws[k] = w
        else:
            sd = sqrt(ref_m2 / (ref_n - 1) if ref_n > 1 else 0.0) or 1.0
            z = (value - m) / sd
            if not z <= 5.0:  # max(-5.0, min(5.0, z)), NaN included
                z = 5.0
            elif z < -5.0:
                z = -5.0
            if four:
                # The loop below for the usual four alternatives, unrolled: their R and CUSUM as locals.
                if scaled:
                    q0, q1 = exp((s0 * z - h0) * inv), exp((s1 * z - h1) * inv)
                    q2, q3 = exp((s2 * z - h2) * inv), exp((s3 * z - h3) * inv)
                else:
                    q0, q1, q2, q3 = exp(s0 * z - h0), exp(s1 * z - h1), exp(s2 * z - h2), exp(s3 * z - h3)
                r0 = (1.0 + r0) * q0
                if r0 > _R_MAX:
                    r0 = _R_MAX
                total += r0
                r1 = (1.0 + r1) * q1
                if r1 > _R_MAX:
                    r1 = _R_MAX
                total += r1
                r2 = (1.0 + r2) * q2
                if r2 > _R_MAX:
                    r2 = _R_MAX
                total += r2
                r3 = (1.0 + r3) * q3
                if r3 > _R_MAX:
                    r3 = _R_MAX
                total += r3
                w0 *= q0
                if w0 > _R_MAX:
                    w0 = _R_MAX
                elif w0 <= 1.0:
                    w0 = 1.0
                    mark = (all_n, all_mean, all_m2)
                    marks[0], zero_ats[0], zero_times[0] = mark, det_n, t
                w1 *= q1
                if w1 > _R_MAX:
                    w1 = _R_MAX
                elif w1 <= 1.0:
                    w1 = 1.0
                    if mark is None:
                        mark = (all_n, all_mean, all_m2)
                    marks[1], zero_ats[1], zero_times[1] = mark, det_n, t
                w2 *= q2
                if w2 > _R_MAX:
                    w2 = _R_MAX
                elif w2 <= 1.0:
                    w2 = 1.0
                    if mark is None:
                        mark = (all_n, all_mean, all_m2)
                    marks[2], zero_ats[2], zero_times[2] = mark, det_n, t
                w3 *= q3
                if w3 > _R_MAX:
                    w3 = _R_MAX
                elif w3 <= 1.0:
                    w3 = 1.0
                    if mark is None:
                        mark = (all_n, all_mean, all_m2)
                    marks[3], zero_ats[3], zero_times[3] = mark, det_n, t
            else:
                for k, signed, half in numeric_arms:
                    ratio = exp((signed * z - half) * inv) if scaled else exp(signed * z - half)
                    r = (1.0 + rs[k]) * ratio
                    if r > _R_MAX:
                        r = _R_MAX
                    rs[k] = r
                    total += r
                    w = ws[k] * ratio
                    if w > _R_MAX:
                        w = _R_MAX
                    if w <= 1.0:
                        ws[k] = 1.0
                        if mark is None:
                            mark = (all_n, all_mean, all_m2)
                        marks[k] = mark
                        zero_ats[k] = det_n
                        zero_times[k] = t
                    else:
                        ws[k] = w
        push(value)
        i += 1
        if total > limit:
            fired = True
            break
        if seasonal and (season.changed or season.active != det_active):  # type: ignore[union-attr]
            break  # the next value resumes the baseline in the new profile: update's path
    # -- back into the objects --------------------------------------------------------------------
    if four:
        rs[:] = r0, r1, r2, r3
        ws[:] = w0, w1, w2, w3
    det._n = det_n
    whole.n, whole.mean, whole.m2 = all_n, all_mean, all_m2
    ref.n, ref.mean, ref.m2 = ref_n, ref_mean, ref_m2
    det._sum_r = total
    for k, arm in enumerate(arms):
        arm.r, arm.w, arm.mark, arm.zero_at, arm.zero_time = (
            rs[k],
            ws[k],
            marks[k],
            zero_ats[k],
            zero_times[k],
        )
    if added:
        acc[:] = a_n, a_sx, a_sy, a_sxx, a_sxy
        disp._ref, disp._n = ref, last_add_n
        disp._a_last, disp._a_sq, disp._k_sum, disp._k_count = a_last, a_sq, k_sum, k_count
        disp._vt_skip = vt_skip
    if season is not None:
        note_clock.start, note_clock.cells = n_start, n_cells
        learn_clock.start, learn_clock.cells = l_start, l_cells
        season._head, season._filled = head, filled
        season._first, season._last, season._count = first, last, count
    if fired:
        det._drift_detected = True
        det._fired = max((a for a in arms if not a.off), key=lambda a: a.r)
        det._fired_by = ("lagged", ref_n)
    return i
