"""``driftwatch serve``: the OTLP receiver in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import signal as signals
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from driftwatch._config import Config
from driftwatch._receiver import Accepted, Handler, Receiver, Signal, limit_items

__all__ = ["run_serve"]


class _CountingHandler:
    """PLACEHOLDER until the OTLP decoder and journal are wired in: counts requests and items per
    signal and accepts everything; nothing reaches detection yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.items: Counter[str] = Counter()

    def handle(self, signal: Signal, request: Message) -> Accepted:
        items, _ = limit_items(signal, request, max_attributes=1 << 30)
        with self._lock:
            self.requests[signal] += 1
            self.items[signal] += items
        return Accepted()

    def ready(self) -> bool:
        return True

    def stats(self) -> Mapping[str, Any]:
        with self._lock:
            return {"placeholder": True, "requests": dict(self.requests), "items": dict(self.items)}


def run_serve(config: Config, handler: Handler | None = None, stop: threading.Event | None = None) -> int:
    """Runs the receiver until ``stop`` is set or the process gets SIGINT/SIGTERM; returns 0."""
    stop = stop or threading.Event()
    receiver = Receiver(handler or _CountingHandler(), config)
    if threading.current_thread() is threading.main_thread():
        # Before start(): a SIGTERM right after the "listening" log line must stop us cleanly too.
        for number in (signals.SIGINT, signals.SIGTERM):
            signals.signal(number, lambda *_: stop.set())
    receiver.start()
    try:
        while not stop.wait(0.5):  # a timed wait lets signal handlers run promptly
            pass
    finally:
        receiver.stop()
    return 0
