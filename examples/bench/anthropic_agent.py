"""A real agent for examples/bench/suite.yaml: asks Claude for solution.py via the Anthropic SDK.

    driftwatch bench run examples/bench/suite.yaml --agent-callable anthropic_agent.py:solve

Needs ``ANTHROPIC_API_KEY`` (``ANTHROPIC_BASE_URL`` to point elsewhere); ``BENCH_MODEL`` picks the
model. The client is wrapped with ``driftwatch.watch``, so every call is also recorded (spans, call
outcomes) when driftwatch is configured; the returned dict gives the bench outcome its tokens and model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anthropic

import driftwatch

_client: Any = None
_FENCE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


def solve(prompt: str, workdir: Path, task: Mapping[str, str]) -> dict[str, Any]:
    """Write the model's solution.py into ``workdir``; return model and token counts."""
    global _client
    if _client is None:
        _client = driftwatch.watch(anthropic.Anthropic())
    message = _client.messages.create(
        model=os.environ.get("BENCH_MODEL", "claude-sonnet-4-6"),
        max_tokens=1024,
        system="You write Python. Reply with only the full contents of solution.py in one code block.",
        messages=[{"role": "user", "content": prompt}],
    )
    text = "".join(block.text for block in message.content if block.type == "text")
    match = _FENCE.search(text)
    (workdir / "solution.py").write_text(match.group(1) if match else text, encoding="utf-8")
    return {
        "model": message.model,
        "input_tokens": message.usage.input_tokens,
        "output_tokens": message.usage.output_tokens,
    }
