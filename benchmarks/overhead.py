"""Per-call overhead of driftwatch.watch() on the real anthropic SDK, against the bare client.

Both clients use the same httpx2.MockTransport (no network), in the same run, alternating rounds;
detection runs on its background thread as in production. Prints medians and the ratio.

Run: make bench   (or: .venv/bin/python benchmarks/overhead.py --calls 2000 --rounds 7)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import anthropic
import httpx2

import driftwatch

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 40},
}
BODY = json.dumps(MESSAGE).encode()


def handler(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=BODY)


def make_client() -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key="bench", base_url="http://api.test", http_client=http, max_retries=0)


def per_call_us(client: anthropic.Anthropic, calls: int) -> float:
    messages = [{"role": "user", "content": "hi"}]
    start = time.perf_counter()
    for _ in range(calls):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=messages)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    driftwatch.configure(sinks=[], console=False)
    bare = make_client()
    watched = driftwatch.watch(make_client())
    per_call_us(bare, 200)
    per_call_us(watched, 200)  # warm both
    bare_t, watched_t = [], []
    for _ in range(args.rounds):
        bare_t.append(per_call_us(bare, args.calls))
        watched_t.append(per_call_us(watched, args.calls))
    runtime = driftwatch.get_runtime()
    assert runtime is not None
    runtime.monitor.flush(10)
    stats = runtime.monitor.stats
    b, w = statistics.median(bare_t), statistics.median(watched_t)
    print(f"anthropic {anthropic.__version__}, {args.rounds} rounds x {args.calls} calls, MockTransport")
    print(f"  bare client      median {b:8.1f} us/call")
    print(f"  driftwatch.watch median {w:8.1f} us/call   (+{w - b:.1f} us, ratio {w / b:.3f}x)")
    print(f"  outcomes processed {stats.processed}, dropped {stats.dropped_queue_full}")
    driftwatch.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
