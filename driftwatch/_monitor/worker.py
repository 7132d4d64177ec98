"""The monitor's worker: a bounded queue the agent's threads append to, drained on one thread."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from driftwatch._outcome import Outcome, PendingOutcome

__all__ = ["Worker"]

#: How long the worker waits for more outcomes between batches while outcomes keep coming (see
#: Monitor.submit); after a quiet spell its wait doubles up to _IDLE_WAIT_S, so the first outcome
#: after one waits at most that long before detection.
_BATCH_WAIT_S = 0.05
_IDLE_WAIT_S = 1.0
#: Queued outcomes that wake the worker at once: enough to share one wake-up among many outcomes,
#: few enough that a burst is drained long before the queue (queue_size) overflows.
_WAKE_AT = 256


class Worker:
    """Runs ``process`` on the queued outcomes (or ``PendingOutcome``s), a list of those queued one
    after another at a time, on a daemon thread started at once.

    A plain deque and a wake-up event, not queue.Queue: waking the worker for each outcome (a
    condition variable, then a GIL hand-off) cost the calling thread more than detection itself.
    The worker drains in batches: at _WAKE_AT queued (or a quarter of the queue), else on its timer.
    """

    def __init__(self, process: Callable[[list[Outcome | PendingOutcome]], object], queue_size: int) -> None:
        self._process = process
        self.queue_size = queue_size
        self._queue: deque[Outcome | PendingOutcome | threading.Event | None] = deque()
        self._wake = threading.Event()
        self._wake_at = max(1, min(_WAKE_AT, queue_size // 4))
        self._thread = threading.Thread(target=self._run, name="driftwatch-monitor", daemon=True)
        self._thread.start()

    def put(self, outcome: Outcome | PendingOutcome) -> bool:
        """Queue ``outcome``; False when the queue is full (the caller counts the drop)."""
        pending = self._queue
        # Check then append: agent threads racing here can overshoot the bound by one each.
        if len(pending) >= self.queue_size:
            return False
        pending.append(outcome)  # atomic under the GIL; no lock, no notify
        if len(pending) >= self._wake_at:
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been processed; False on timeout."""
        if not self._thread.is_alive():
            return True
        marker = threading.Event()
        self._queue.append(marker)  # markers carry no outcome, so the bound does not apply to them
        self._wake.set()
        return marker.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Process what is queued (up to ``timeout``) and stop the thread."""
        if self._thread.is_alive():
            self.flush(timeout)
            self._queue.append(None)
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        pending = self._queue
        wait = _BATCH_WAIT_S
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if not pending:
                # Quiet: wake less and less often (each wake-up takes the GIL from the agent).
                wait = min(wait * 2, _IDLE_WAIT_S)
                continue
            wait = _BATCH_WAIT_S
            batch: list[Outcome | PendingOutcome] = []
            while pending:
                item = pending.popleft()
                if item is None or isinstance(item, threading.Event):
                    if batch:  # everything queued before a marker is processed before it is set
                        self._process(batch)
                        batch = []
                    if item is None:
                        return
                    item.set()
                    continue
                batch.append(item)
                if len(batch) >= self.queue_size:
                    self._process(batch)
                    batch = []
            if batch:
                self._process(batch)
