"""A small coding agent on the Claude Agent SDK, watched by ``driftwatch.agent_run``, with a verifier.

The agent is asked to fix ``add`` in a tiny repository (a temporary directory); the verifier runs
the repository's check and records the verdict, which wins over what the run reported. Each run is
one task outcome (printed here): success, cost, turns, tool uses by name, reads per edit.

    python examples/agents/coding_agent.py            # offline: driftwatch's fake Messages API
    python examples/agents/coding_agent.py --live     # the real API (ANTHROPIC_API_KEY)

Offline, the fake API plays the model: it reads the file, greps for the function, then writes
the fix. Needs ``pip install claude-agent-sdk`` (it brings the Claude Code CLI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions

import driftwatch
from driftwatch._offline.fake_api import FakeMessagesAPI, Reply

BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
CHECK = "from calc import add; assert add(2, 3) == 5"


class PrintOutcomes:
    """A sink that prints every outcome (``record_outcome``) and every alert."""

    def __init__(self) -> None:
        self.outcomes: list[driftwatch.Outcome] = []

    def record_outcome(self, outcome: driftwatch.Outcome, stream: dict[str, str]) -> None:
        self.outcomes.append(outcome)
        print(json.dumps(outcome.to_dict(), indent=2))

    def export(self, alert: driftwatch.Alert) -> None:
        print(alert.message)

    def shutdown(self) -> None:
        pass


def fake_model(repo: Path) -> FakeMessagesAPI:
    """The fake API as a model that reads, greps, then writes the fix, one tool use per turn."""
    plan: list[tuple[str, dict[str, Any]]] = [
        ("Read", {"file_path": str(repo / "calc.py")}),
        ("Grep", {"pattern": "def add", "path": str(repo)}),
        ("Write", {"file_path": str(repo / "calc.py"), "content": FIXED}),
    ]

    def profile(request: dict[str, Any], headers: dict[str, str]) -> Reply:
        done = json.dumps(request.get("messages", [])).count('"tool_result"')
        reply = Reply(model=request.get("model"), input_tokens=900, output_tokens=120)
        if done < len(plan):
            name, tool_input = plan[done]
            reply.update(tool_calls=1, tool_name=name, tool_input=tool_input)
        return reply

    return FakeMessagesAPI(profile)


def verify(repo: Path) -> bool:
    """The repository's own check: did the agent fix ``add``?"""
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=repo, capture_output=True, timeout=60)
    return proc.returncode == 0


async def fix(repo: Path, env: dict[str, str]) -> None:
    options = ClaudeAgentOptions(
        cwd=str(repo),
        env=env,
        model="claude-sonnet-4-5",
        allowed_tools=["Read", "Grep", "Glob", "Edit", "Write"],
        permission_mode="acceptEdits",
        max_turns=10,
    )
    async with driftwatch.agent_run("fix-add", repo="calc") as run:
        async for _message in run.query(prompt="calc.add is wrong: fix it", options=options):
            pass  # a real agent would show progress here
        run.record(success=verify(repo))


def main(argv: list[str] | None = None) -> list[driftwatch.Outcome]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="use the real API (ANTHROPIC_API_KEY)")
    args = parser.parse_args(argv)
    printer = PrintOutcomes()
    driftwatch.configure(sinks=[printer], service="coding-agent", console=False)
    with tempfile.TemporaryDirectory() as tmp:
        repo, home = Path(tmp) / "repo", Path(tmp) / "home"
        repo.mkdir()
        home.mkdir()
        (repo / "calc.py").write_text(BROKEN)
        if args.live:
            asyncio.run(fix(repo, {}))
        else:
            with fake_model(repo) as api:
                env = {
                    "HOME": str(home),
                    "ANTHROPIC_BASE_URL": api.base_url,
                    "ANTHROPIC_API_KEY": "dummy",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                }
                asyncio.run(fix(repo, env))
        driftwatch.shutdown()
    return printer.outcomes


if __name__ == "__main__":
    main()
