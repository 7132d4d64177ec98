"""Soak: ``driftwatch serve`` at half of its measured capacity for 30 minutes, memory sampled.

Starts the real ``driftwatch serve`` (a subprocess: its RSS is the service's alone) on free ports
with a fresh state file, then paced clients (3 keep-alive connections sharing the rate: one alone
waits on each acknowledgement and reached only ~49/s) send distinct 100-span OTLP/HTTP requests
(the payload and ``Variants`` of benchmarks/receiver.py). Every
``--sample`` seconds it prints the server's RSS (``/proc/PID/status``) and its ``/stats`` backlog;
at the end, the RSS slope over the second half of the run (Theil-Sen: the median of pairwise
slopes, so one transient peak does not decide; least squares beside it) and a verdict.

The default rate, 78 requests/s (7,800 spans/s), is half of the 153–162 requests/s that
``benchmarks/receiver.py`` (and ``--serve-only``) measured through detection (docs/serve.md).
Not in CI.

Run: make soak   (or: .venv/bin/python -P benchmarks/soak.py --minutes 3 [--rate 78])
"""

from __future__ import annotations

import argparse
import http.client
import json
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

FLAT = 0.25  # flat: the slope projects to less than this fraction of the final RSS over 24 hours


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


def theil_sen_per_min(points: list[tuple[float, int]]) -> float:
    """Median of the pairwise slopes, KiB per minute: one transient peak does not decide the verdict."""
    slopes = [
        (b[1] - a[1]) / ((b[0] - a[0]) / 60)
        for i, a in enumerate(points)
        for b in points[i + 1 :]
        if b[0] > a[0]
    ]
    return statistics.median(slopes) if slopes else float("nan")


def slope_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares KiB per minute."""
    ts = [t / 60 for t, _ in points]
    ys = [float(y) for _, y in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=78.0, help="requests/s of 100 spans (default 78)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between RSS samples")
    parser.add_argument(
        "--clients",
        type=int,
        default=3,
        help="paced connections sharing the rate (default 3: one waits on each acknowledgement)",
    )
    args = parser.parse_args()
    http_port, grpc_port = free_port(), free_port()
    driftwatch = Path(sys.executable).parent / "driftwatch"
    with tempfile.TemporaryDirectory() as tmp:
        command = [str(driftwatch), "serve", "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
        command += ["--state", f"{tmp}/state.db", "--alerts-out", f"{tmp}/alerts.jsonl"]
        log = open(f"{tmp}/serve.log", "wb")  # noqa: SIM115 (closed below, after the process)
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
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
            points: list[tuple[float, int]] = [(0.0, rss_kib(server.pid))]
            print(
                f"soak: {args.rate:g} requests/s x 100 spans over {args.clients} connections for "
                f"{args.minutes:g} min; serve pid {server.pid}"
            )
            print(f"  {'t (s)':>7} {'RSS (MiB)':>10} {'sent':>8} {'acked':>8} {'failed':>6} {'backlog':>8}")
            end = start + args.minutes * 60
            while (now := time.monotonic()) < end:
                time.sleep(min(args.sample, end - now))
                t = time.monotonic() - start
                points.append((t, rss_kib(server.pid)))
                stats = get_json(http_port, "/stats") or {}
                backlog = (stats.get("handler") or {}).get("backlog", "?")
                print(
                    f"  {t:7.0f} {points[-1][1] / 1024:10.1f} {sum(c.sent for c in clients):8d} "
                    f"{sum(c.ok for c in clients):8d} {sum(c.failed for c in clients):6d} {backlog!s:>8}",
                    flush=True,
                )
            for client in clients:
                client.stop.set()
            for client in clients:
                client.join(10)
            elapsed = time.monotonic() - start
            ok, failed = sum(c.ok for c in clients), sum(c.failed for c in clients)
            resent = sum(c.resent for c in clients)
            why: dict[str, int] = {}
            for client in clients:
                for k, v in client.why.items():
                    why[k] = why.get(k, 0) + v
            # Warm-up: the first half (stream state, SQLite page cache and journal fill in first).
            warm = [p for p in points if p[0] >= elapsed / 2]
            slope = theil_sen_per_min(warm) if len(warm) >= 2 else float("nan")
            least_squares = slope_per_min(warm) if len(warm) >= 2 else float("nan")
            final = points[-1][1]
            day = slope * 60 * 24
            flat = abs(day) < FLAT * final
            print(
                f"soak: {ok} acknowledged ({ok / elapsed:.1f}/s of {args.rate:g} asked), "
                f"{failed} failed {why or ''}, {resent} resent on a new connection; "
                f"RSS {points[0][1] / 1024:.1f} -> {final / 1024:.1f} MiB "
                f"(max {max(p[1] for p in points) / 1024:.1f})"
            )
            print(
                f"soak: RSS slope over the second half {slope:+.1f} KiB/min Theil-Sen "
                f"({least_squares:+.1f} least squares; {day / 1024:+.1f} MiB/day projected, "
                f"{len(warm)} samples): "
                f"{'flat' if flat else 'NOT FLAT'} (goal: < {FLAT:.0%} of RSS per day)"
            )
            return 0 if flat and failed == 0 else 1
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


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
