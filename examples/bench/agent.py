"""An offline scripted agent for examples/bench/suite.yaml: writes a canned solution.py.

It reads the prompt on stdin, writes solution.py in its working directory and prints a JSON line
with token counts (as a real agent would report them). It fails a few runs at random (seeded by
the run and task id, so runs are reproducible): 5% by default. ``BENCH_AGENT_DEGRADE`` makes a
category fail more often, e.g. ``strings:0.6`` (60% of the 'strings' tasks): a silent degradation
for `driftwatch bench run` to catch.
"""

from __future__ import annotations

import json
import os
import random
import sys

RIGHT = {
    "add": "def add(a, b):\n    return a + b\n",
    "fizzbuzz": (
        "def fizzbuzz(n):\n"
        "    if n % 15 == 0:\n        return 'FizzBuzz'\n"
        "    return 'Fizz' if n % 3 == 0 else 'Buzz' if n % 5 == 0 else str(n)\n"
    ),
    "reverse": "def reverse_words(s):\n    return ' '.join(reversed(s.split()))\n",
    "vowels": "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n",
}
WRONG = {
    "add": "def add(a, b):\n    return a - b\n",
    "fizzbuzz": "def fizzbuzz(n):\n    return str(n)\n",
    "reverse": "def reverse_words(s):\n    return s[::-1]\n",
    "vowels": "def count_vowels(s):\n    return 0\n",
}


def fail_rate(category: str) -> float:
    rate = 0.05
    for part in os.environ.get("BENCH_AGENT_DEGRADE", "").split(","):
        name, _, value = part.partition(":")
        if name.strip() == category and value:
            rate = float(value)
    return rate


def main() -> int:
    prompt = sys.stdin.read()
    task = os.environ["DRIFTWATCH_BENCH_TASK"]
    category = os.environ.get("DRIFTWATCH_BENCH_CATEGORY", "default")
    seed = f"{os.environ.get('DRIFTWATCH_BENCH_RUN', '')}/{os.environ.get('DRIFTWATCH_BENCH_TASK_ID', '')}"
    rng = random.Random(seed)
    code = (WRONG if rng.random() < fail_rate(category) else RIGHT).get(task, "")
    with open("solution.py", "w", encoding="utf-8") as fh:
        fh.write(code)
    print(f"wrote solution.py for {task}")
    report = {"input_tokens": 40 + len(prompt) // 4, "output_tokens": 10 + len(code) // 4}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
