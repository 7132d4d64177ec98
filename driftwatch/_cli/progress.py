"""A progress bar for long command-line runs: drawn on a terminal only, never into pipes or logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``[#######·········]  45%  4,500/10,000 label`` on stderr, at most ten redraws a second.

    Silent unless the stream is a terminal, so cron jobs, CI logs and pipes stay clean.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 28) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = self.total > 0 and self.stream.isatty()
        self._drawn = 0.0
        self._done = 0

    def update(self, done: int) -> None:
        self._done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = min(done / self.total, 1.0)
        filled = int(share * self.width)
        bar = "#" * filled + "·" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {share * 100:4.0f}%  {done:,}/{self.total:,} {self.label}")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
