"""Benjamini–Hochberg bookkeeping across concurrent stage-two candidates, as a small object.

A candidate is a suspected alert awaiting confirmation (``watch.Lifecycle._confirm``). Its set is
itself, the candidates still open when it is decided (p-values unknown, counted as 1) and those
decided since it was suspected (with their p-values). The state goes into monitor snapshots as a
plain tuple (``state``/``load``), the candidates' own numbers in each watch's ``opened``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from driftwatch._config import Config

if TYPE_CHECKING:
    from driftwatch._monitor.watch import _SignalWatch

__all__ = ["Fdr"]

#: Decided stage-two p-values kept for Benjamini–Hochberg; older ones count as p = 1 (conservative).
_BH_LOG_MAX = 10_000


class Fdr:
    """An event counter, the open candidates (their event numbers when suspected, also kept in each
    watch's ``opened``, so that the set survives a snapshot and restore), decided p-values."""

    __slots__ = ("config", "decided", "decided_total", "events", "open")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.events = 0
        self.open: set[int] = set()
        self.decided: deque[tuple[int, float]] = deque(maxlen=_BH_LOG_MAX)
        self.decided_total = 0

    def state(self) -> tuple[int, set[int], list[tuple[int, float]], int]:
        """A copy for a snapshot: (events, open, decided, decided_total)."""
        return (self.events, set(self.open), list(self.decided), self.decided_total)

    def load(self, state: Any) -> None:
        """Replace the bookkeeping with a snapshot's ``state()``."""
        events, open_events, decided, decided_total = state
        self.events = int(events)
        self.open = set(open_events)
        self.decided = deque(decided, maxlen=_BH_LOG_MAX)
        self.decided_total = int(decided_total)

    def adopt(self, watch: _SignalWatch, src_decided_total: int) -> None:
        """A candidate merged from another monitor's snapshot, renumbered into this event order.

        Decisions the other monitor made while it was open count in ``m`` as p = 1 (conservative).
        """
        decided_since = src_decided_total - watch.opened[1]
        self.events += 1
        watch.opened = (self.events, self.decided_total - decided_since)
        self.open.add(self.events)

    def open_candidate(self, watch: _SignalWatch) -> None:
        """Note that ``watch`` became a stage-two candidate now (for ``decide``)."""
        self.events += 1
        watch.opened = (self.events, self.decided_total)
        self.open.add(self.events)

    def decide(self, watch: _SignalWatch, p: float) -> tuple[bool, int, int]:
        """Benjamini–Hochberg over the stage-two candidates concurrent with this one.

        The set is this candidate, the others still open (their p-values unknown, counted as 1) and
        those decided since this one was suspected (with their p-values). With ``m`` of them and
        this p-value ranked ``k``-th, BH would confirm it when ``p <= confirm_alpha * k / m``;
        alone, that is the plain test at ``confirm_alpha``. Returns (BH's verdict, m, k).

        Stage two is sequential now and decides per candidate at ``confirm_alpha`` (each false page
        is bounded per stream by ``budget * confirm_alpha``); ``m`` and ``k`` go into the alert's
        ``extra`` as information, with the anytime p-value ``1 / likelihood ratio``, so that the
        verdicts can be checked against Benjamini–Hochberg offline. A gate here could only delay
        pages when many streams move together.
        """
        opened_at, decided_before = watch.opened
        self.open.discard(opened_at)
        others_open = len(self.open)
        since = [q for event, q in self.decided if event > opened_at]
        # Decisions that fell out of the bounded log still count in m (as p = 1): conservative.
        m = 1 + others_open + (self.decided_total - decided_before)
        k = 1 + sum(1 for q in since if q <= p) + (others_open if p >= 1.0 else 0)
        confirmed = p <= self.config.confirm_alpha * k / m
        self.events += 1
        self.decided.append((self.events, p))
        self.decided_total += 1
        # No open candidate needs decisions made before the oldest of them was suspected.
        oldest = min(self.open, default=self.events + 1)
        while self.decided and self.decided[0][0] <= oldest:
            self.decided.popleft()
        return confirmed, m, k
