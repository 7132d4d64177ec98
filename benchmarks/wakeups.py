"""What a background thread's wake-ups cost beside a busy Python thread (why the monitor batches).

A worker waits on an Event with a timeout (as driftwatch's monitor does between batches) while the
main thread runs pure Python; the worker's own CPU time per second is printed for several waits.
Each wake-up must take the GIL from the busy thread. On the project's 2-core machine a 50 ms wait
cost 1.7-2.9 ms of CPU per second (85-150 us per wake-up), a 1 s wait 0.07-0.12 ms/s.

Run: .venv/bin/python -P benchmarks/wakeups.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import threading
import time


def worker_cpu_ms_per_s(wait: float, seconds: float) -> float:
    event, stop = threading.Event(), threading.Event()

    def worker() -> None:
        while not stop.is_set():
            event.wait(wait)
            event.clear()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    before, start = time.clock_gettime(clock), time.perf_counter()
    x = 0
    while time.perf_counter() - start < seconds:
        for i in range(10_000):
            x += i * i
    used = time.clock_gettime(clock) - before
    stop.set()
    event.set()
    thread.join()
    return used / seconds * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for wait in (0.005, 0.05, 1.0):
        cost = worker_cpu_ms_per_s(wait, args.seconds)
        print(
            f"wait {wait:6.3f} s: worker CPU {cost:6.2f} ms per second "
            f"({cost * wait * 1e3:7.1f} us per wake-up)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
