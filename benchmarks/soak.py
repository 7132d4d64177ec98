"""Soak: ``driftwatch serve`` at half of its capacity for 30 minutes; RSS and Python heap, flat or not.

Starts the real ``driftwatch serve`` (a subprocess: its RSS is the service's alone) on free ports
with a fresh state file and a small outcome-history cap (``--history-mb``, so that the history
reaches its cap early and retention pruning runs for most of the soak), then paced clients (3
keep-alive connections sharing the rate: one alone waits on each acknowledgement) send distinct
100-span OTLP/HTTP requests (the payload and ``Variants`` of benchmarks/receiver.py). Every
``--sample`` seconds it records the server's RSS (``/proc/PID/status``; and, for the verdict, the
RSS the service read right after its latest checkpoint's trim, ``/stats``
``handler.malloc_trim.rss_after_bytes``), its Python heap
(``/stats`` ``memory``: ``sys.getallocatedblocks()``, and tracemalloc's bytes with
``--tracemalloc``), the backlog and the history's rows, bytes and pruned rows.

The fit window starts at the later of half the run and the first pruning (the steady state: the
history at its cap). Each series' slope there is the Theil-Sen median of pairwise slopes, with a
95% interval from a moving-block bootstrap of its residuals (blocks of sqrt(n) samples keep the
samples' correlation; seeded); least squares beside it. A series is flat when its interval contains
0 (or lies below it), or lies below the stated tiny bound. Exit 0 when both are flat, the history
reached its cap and no request failed.

The default rate, 24 requests/s (2,400 outcomes/s), is half of the 47.5 requests/s that the service
kept up with through detection and history writing, with the history at its cap and pruning
(``--minutes 3 --rate 100 --history-mb 64``: 860,000 outcomes in 181 s; docs/performance.md,
"Soak"). Not in CI.

Run: make soak   (or: .venv/bin/python -P benchmarks/soak.py --minutes 8 --history-mb 32)
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # with -P, benchmarks/ is not on sys.path
from receiver import Variants, payload

#: Tiny bounds: a series is flat when its slope's 95% interval contains 0 or lies below this
#: (RSS: 1 KiB/min = 1.4 MiB/day; heap: 10 blocks/min, about 1 KiB/min of small objects).
TINY = {"rss": 1.0, "rss_after": 1.0, "blocks": 10.0, "traced": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else None
    finally:
        conn.close()


class Client(threading.Thread):
    """Sends at ``rate`` requests/s until stopped; counts what was acknowledged and what was not."""

    def __init__(self, port: int, rate: float, number: int = 0) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, 1.0 / rate
        self.variants = Variants(payload(), client=number)  # distinct ids per client
        self.sent = self.ok = self.failed = self.resent = 0
        self.why: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/x-protobuf"}
        next_at = time.monotonic()
        while not self.stop.is_set():
            body = self.variants.body(self.sent)
            self.sent += 1
            try:
                try:
                    conn.request("POST", "/v1/traces", body, headers)
                    response = conn.getresponse()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    # The server may close an idle keep-alive connection at any moment: resend once.
                    self.resent += 1
                    conn.close()
                    conn.request("POST", "/v1/traces", body, headers)
                    response = conn.getresponse()
                response.read()
                if response.status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.why[f"HTTP {response.status}"] = self.why.get(f"HTTP {response.status}", 0) + 1
            except (OSError, http.client.HTTPException) as exc:
                self.failed += 1
                self.why[type(exc).__name__] = self.why.get(type(exc).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind: do not burst to catch up
        conn.close()


def theil_sen_per_min(points: list[tuple[float, float]]) -> float:
    """Median of the pairwise slopes, per minute: one transient peak does not decide the verdict."""
    slopes = [
        (b[1] - a[1]) / ((b[0] - a[0]) / 60)
        for i, a in enumerate(points)
        for b in points[i + 1 :]
        if b[0] > a[0]
    ]
    return statistics.median(slopes) if slopes else float("nan")


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least squares, per minute."""
    ts = [t / 60 for t, _ in points]
    ys = [y for _, y in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else 0.0


def slope_interval(
    points: list[tuple[float, float]], seed: int, resamples: int = 1000
) -> tuple[float, float, float]:
    """Theil-Sen slope per minute and its 95% interval: a moving-block bootstrap of the residuals.

    Samples taken seconds apart are correlated (an allocator level lasts minutes), so residuals are
    resampled in blocks of sqrt(n) consecutive samples, added back to the fitted line at the same
    times and the slope refitted; the interval is the 2.5th and 97.5th percentiles."""
    slope = theil_sen_per_min(points)
    n = len(points)
    if n < 4 or math.isnan(slope):
        return slope, float("nan"), float("nan")
    intercept = statistics.median(y - slope * t / 60 for t, y in points)
    residuals = [y - intercept - slope * t / 60 for t, y in points]
    block = max(2, round(math.sqrt(n)))
    rng = random.Random(seed)
    slopes = []
    for _ in range(resamples):
        drawn: list[float] = []
        while len(drawn) < n:
            at = rng.randrange(n - block + 1)
            drawn.extend(residuals[at : at + block])
        fake = [(t, intercept + slope * t / 60 + r) for (t, _), r in zip(points, drawn, strict=False)]
        slopes.append(theil_sen_per_min(fake))
    slopes.sort()
    return slope, slopes[int(0.025 * resamples)], slopes[int(0.975 * resamples) - 1]


def verdict(lo: float, hi: float, tiny: float) -> str:
    """Flat: the interval contains 0 or lies below it, or lies below the tiny bound."""
    if math.isnan(lo):
        return "too few samples"
    return "flat" if lo <= 0 or hi < tiny else "NOT FLAT"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=24.0, help="requests/s of 100 spans (default 24)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument(
        "--clients",
        type=int,
        default=3,
        help="paced connections sharing the rate (default 3: one waits on each acknowledgement)",
    )
    parser.add_argument(
        "--history-mb",
        type=int,
        default=256,
        help="the service's history_max_mb (default 256: reached within minutes, then pruned)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="run the service with PYTHONTRACEMALLOC=1 (slower)"
    )
    parser.add_argument(
        "--malloc-stats",
        metavar="PATH",
        help="run the service through benchmarks/malloc_probe.py (glibc and SQLite heap sampled to PATH)",
    )
    parser.add_argument("--seed", type=int, default=20261202, help="bootstrap seed")
    parser.add_argument("--samples-out", metavar="PATH", help="also write every sample as JSON lines")
    args = parser.parse_args()
    http_port, grpc_port = free_port(), free_port()
    driftwatch = Path(sys.executable).parent / "driftwatch"
    env = {**os.environ, "DRIFTWATCH_HISTORY_MAX_MB": str(args.history_mb)}
    if args.tracemalloc:
        env["PYTHONTRACEMALLOC"] = "1"
    program = [str(driftwatch)]
    if args.malloc_stats:
        program = [sys.executable, "-P", str(Path(__file__).resolve().parent / "malloc_probe.py")]
        env.update(
            MALLOC_PROBE_OUT=args.malloc_stats,
            MALLOC_PROBE_EVERY=str(args.sample),
            MALLOC_PROBE_MAPS_EVERY=str(max(1, round(60 / args.sample))),  # /proc smaps once a minute
        )
    with tempfile.TemporaryDirectory() as tmp:
        command = [*program, "serve", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
        command += ["--state", f"{tmp}/state.db", "--alerts-out", f"{tmp}/alerts.jsonl"]
        log = open(f"{tmp}/serve.log", "wb")  # noqa: SIM115 (closed below, after the process)
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        samples_out = open(args.samples_out, "w") if args.samples_out else None  # noqa: SIM115
        try:
            deadline = time.monotonic() + 30
            while get_ready(http_port) is False:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"driftwatch serve did not become ready: {Path(tmp, 'serve.log').read_text()}"
                    )
                time.sleep(0.2)
            clients = [Client(http_port, args.rate / args.clients, i) for i in range(args.clients)]
            start = time.monotonic()
            for client in clients:
                client.start()
            samples: list[dict[str, Any]] = []
            print(
                f"soak: {args.rate:g} requests/s x 100 spans over {args.clients} connections for "
                f"{args.minutes:g} min, history capped at {args.history_mb} MiB; serve pid {server.pid}"
            )
            print(
                f"  {'t (s)':>6} {'RSS MiB':>8} {'ckpt MiB':>8} {'heap kblk':>9} {'traced MiB':>10} "
                f"{'acked':>8} {'failed':>6} {'backlog':>7} {'hist rows':>9} {'hist MiB':>8} {'pruned':>8}"
            )
            end = start + args.minutes * 60
            while (now := time.monotonic()) < end:
                time.sleep(min(args.sample, end - now))
                stats = get_json(http_port, "/stats") or {}
                handler = stats.get("handler") or {}
                history = handler.get("history") or {}
                memory = stats.get("memory") or {}
                sample: dict[str, Any] = {
                    "t": time.monotonic() - start,
                    "rss": rss_kib(server.pid),
                    # RSS right after the latest checkpoint's trim: one point of the worker's cycle
                    "rss_after": None
                    if (handler.get("malloc_trim") or {}).get("rss_after_bytes") is None
                    else handler["malloc_trim"]["rss_after_bytes"] / 1024,
                    "buffered": history.get("buffered"),
                    "blocks": memory.get("python_blocks"),
                    "traced": None if memory.get("traced_bytes") is None else memory["traced_bytes"] / 1024,
                    "acked": sum(c.ok for c in clients),
                    "failed": sum(c.failed for c in clients),
                    "backlog": handler.get("backlog"),
                    "outcomes": (handler.get("durable") or {}).get("outcomes"),
                    "rows": history.get("rows"),
                    "bytes": history.get("bytes"),
                    "pruned": history.get("pruned_rows"),
                    "prune_max_s": history.get("prune_max_seconds"),
                    "arena_max": (handler.get("malloc_trim") or {}).get("arena_max"),
                }
                samples.append(sample)
                if samples_out:
                    samples_out.write(json.dumps(sample) + "\n")
                traced = "-" if sample["traced"] is None else f"{sample['traced'] / 1024:.1f}"
                print(
                    f"  {sample['t']:6.0f} {sample['rss'] / 1024:8.1f} "
                    f"{(sample['rss_after'] or 0) / 1024:8.1f} "
                    f"{(sample['blocks'] or 0) / 1000:9.1f} "
                    f"{traced:>10} {sample['acked']:8d} {sample['failed']:6d} {sample['backlog']!s:>7} "
                    f"{sample['rows']!s:>9} {(sample['bytes'] or 0) / 2**20:8.1f} {sample['pruned']!s:>8}",
                    flush=True,
                )
            for client in clients:
                client.stop.set()
            for client in clients:
                client.join(10)
            elapsed = time.monotonic() - start
            return report(args, clients, samples, elapsed)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            if samples_out:
                samples_out.close()


def report(
    args: argparse.Namespace, clients: list[Client], samples: list[dict[str, Any]], elapsed: float
) -> int:
    """Prints the totals, the history's cap and pruning, and each series' slope; the exit status."""
    ok, failed = sum(c.ok for c in clients), sum(c.failed for c in clients)
    resent = sum(c.resent for c in clients)
    why: dict[str, int] = {}
    for client in clients:
        for k, v in client.why.items():
            why[k] = why.get(k, 0) + v
    last = samples[-1]
    print(
        f"soak: {ok} acknowledged ({ok / elapsed:.1f}/s of {args.rate:g} asked), {failed} failed "
        f"{why or ''}, {resent} resent on a new connection; {last['outcomes']} outcomes through "
        f"detection, backlog at the end {last['backlog']} (max {max(s['backlog'] or 0 for s in samples)})"
    )
    arenas = last.get("arena_max")
    print(
        "soak: the service's malloc arenas: "
        + (f"capped at {arenas}" if arenas else "not capped (MALLOC_ARENA_MAX set, or not glibc)")
    )
    capped = next((s["t"] for s in samples if s["pruned"]), None)
    print(
        f"soak: history {last['rows']} rows, {(last['bytes'] or 0) / 2**20:.1f} MiB of the "
        f"{args.history_mb} MiB cap; "
        + (
            f"first pruned at {capped:.0f} s, {last['pruned']} rows pruned in all, longest prune "
            f"{(last['prune_max_s'] or 0) * 1000:.0f} ms"
            if capped is not None
            else "never reached its cap (no pruning): not the steady state"
        )
    )
    begin = max(elapsed / 2, capped if capped is not None else 0.0)
    window = [s for s in samples if s["t"] >= begin]
    print(f"soak: fit window {begin:.0f}-{elapsed:.0f} s ({len(window)} samples, seed {args.seed})")
    flat = True
    # The verdict's RSS is the one read right after each checkpoint (and its malloc_trim): sampled at
    # any moment, RSS also carries the worker's cycle (the history buffer of up to 20,000 outcomes,
    # SQLite's transaction), a sawtooth of ~10 MiB whose phase at each sample drifts, so
    # that series' slope is reported but does not decide. Without malloc_trim (not glibc) it does.
    after = any(s["rss_after"] is not None for s in window)
    series = [("rss", "RSS (any moment)", "KiB/min")] if after else []
    series += [
        ("rss_after", "RSS after each checkpoint", "KiB/min") if after else ("rss", "RSS", "KiB/min"),
        ("blocks", "Python heap", "blocks/min"),
    ]
    if args.tracemalloc:
        series.append(("traced", "Python heap (tracemalloc)", "KiB/min"))
    for key, name, unit in series:
        points = [(float(s["t"]), float(s[key])) for s in window if s[key] is not None]
        if len(points) < 4:
            print(f"soak: {name}: {len(points)} samples in the window, too few for a slope")
            flat = False
            continue
        slope, lo, hi = slope_interval(points, args.seed)
        said = verdict(lo, hi, TINY[key])
        if not (after and key == "rss"):
            flat = flat and said == "flat"
        mean = statistics.fmean(y for _, y in points)
        print(
            f"soak: {name} slope {slope:+.1f} {unit} (95% CI {lo:+.1f} to {hi:+.1f}; least squares "
            f"{slope_per_min(points):+.1f}), mean {mean:,.0f}, range {min(y for _, y in points):,.0f}-"
            f"{max(y for _, y in points):,.0f}: {said} (interval contains 0, or below +{TINY[key]:g} {unit})"
        )
    cycle = [(float(s["rss"]), float(s["buffered"])) for s in window if s["buffered"] is not None]
    if len(cycle) >= 3 and len({b for _, b in cycle}) > 1:
        print(
            f"soak: correlation of RSS (any moment) with the outcomes waiting for the next checkpoint "
            f"{statistics.correlation([r for r, _ in cycle], [b for _, b in cycle]):.2f} "
            f"({min(b for _, b in cycle):.0f}-{max(b for _, b in cycle):.0f} waiting)"
        )
    if args.malloc_stats:
        malloc_summary(args.malloc_stats, begin)
    return 0 if flat and failed == 0 and capped is not None else 1


def malloc_summary(path: str, begin: float) -> None:
    """Over the fit window: RSS beside glibc's heap (in use, free chunks kept) and SQLite's memory."""
    rows = [r for r in map(json.loads, Path(path).read_text().splitlines()) if r["t"] >= begin]
    if len(rows) < 3:
        print(f"soak: {path}: {len(rows)} malloc samples in the window, too few")
        return

    def spread(key: str) -> str:
        values = [r[key] / 2**20 for r in rows]
        return f"{min(values):.1f}-{max(values):.1f} (median {statistics.median(values):.1f})"

    rss = [float(r["rss"]) for r in rows]
    print(
        f"soak: C heap over the window ({len(rows)} samples, MiB): RSS {spread('rss')}; glibc arenas "
        f"{spread('arena')}, in use {spread('inuse')}, free chunks kept {spread('free')}; SQLite in use "
        f"{spread('sqlite')}, high-water {spread('sqlite_highwater')}; correlation of RSS with the "
        f"arenas {statistics.correlation(rss, [float(r['arena']) for r in rows]):.2f}, with glibc's "
        f"in-use bytes {statistics.correlation(rss, [float(r['inuse']) for r in rows]):.2f}"
    )


def get_ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        ready = conn.getresponse().status == 200
        conn.close()
        return ready
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
