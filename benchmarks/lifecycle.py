"""How fast a confirmed alert resolves when its stream comes back, and how often it resolves falsely.

Seeded pass-rate streams through the real Monitor: 0.8 for 800 tasks, 0.5 for 600, back to 0.8 for
3,000 (the recovery), and, for false resolves, 0.8 then 0.5 for 8,600 (no recovery). Prints how
many of the confirmed alerts resolved, the median and range of observations from the return to
the resolve, and resolves of the alert while the stream stayed degraded.

Run: .venv/bin/python -P benchmarks/lifecycle.py [--seeds 30]
"""

from __future__ import annotations

import argparse
import random
import statistics

from driftwatch import Config, Monitor, Outcome


def first_page_and_resolve(rates: list[tuple[float, int]], seed: int) -> tuple[int | None, int | None]:
    """Index of the first confirmed alert and of that alert's resolve (None when absent)."""
    monitor = Monitor(Config(signals=["success"], console=False), threaded=False)
    rng = random.Random(seed)
    page: str | None = None
    paged_at = resolved_at = None
    i = 0
    for rate, count in rates:
        for _ in range(count):
            i += 1
            for alert in monitor.process(Outcome(task="fix", time=float(i), success=rng.random() < rate)):
                if alert.status == "confirmed" and page is None:
                    page, paged_at = alert.id, i
                elif alert.status == "resolved" and alert.id == page and resolved_at is None:
                    resolved_at = i
    return paged_at, resolved_at


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    back = 800 + 600
    delays = []
    for seed in range(args.seeds):
        _, resolved = first_page_and_resolve([(0.8, 800), (0.5, 600), (0.8, 3000)], seed)
        if resolved is not None:
            delays.append(resolved - back)
    early = [d for d in delays if d < 0]
    print(f"recovery 0.5 -> 0.8 after 1,400 tasks, {args.seeds} seeds: {len(delays)} resolved")
    if delays:
        print(
            f"  observations from the return to the resolve: median {statistics.median(delays):.0f}, "
            f"range {min(delays)}..{max(delays)} ({len(early)} resolved before the return)"
        )
    false = 0
    for seed in range(args.seeds):
        _, resolved = first_page_and_resolve([(0.8, 800), (0.5, 8600)], seed)
        false += resolved is not None
    print(f"no recovery (0.5 for 8,600 tasks), {args.seeds} seeds: {false} false resolves of the page")


if __name__ == "__main__":
    main()
