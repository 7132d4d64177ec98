"""`driftwatch X --help` works for every subcommand (one module each under driftwatch/_cli/)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from driftwatch._cli import main as cli

DRIFTWATCH = [sys.executable, "-P", "-m", "driftwatch"]
#: Every command line that runs something, as ``driftwatch X --help`` takes it.
COMMANDS = [
    "demo",
    "replay",
    "report",
    "alert",
    "alert test",
    "ingest",
    "ingest claude-code",
    "ingest junit",
    "compare",
    "serve",
    "status",
    "bench",
    "bench run",
]


def parser_commands() -> list[str]:
    """The subcommands the parser knows, nested ones included."""
    found: list[str] = []

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append(f"{prefix}{name}")
                    walk(sub, f"{prefix}{name} ")

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    for command in cli.COMMANDS:
        command.add_parser(sub)
    walk(parser, "")
    return found


def test_the_list_names_every_subcommand() -> None:
    assert sorted(parser_commands()) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_subcommand(command: str) -> None:
    result = subprocess.run(
        [*DRIFTWATCH, *command.split(), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: driftwatch {command}"), result.stdout[:200]
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["ingest", "bench"])
def test_a_command_without_its_action_prints_its_help(command: str) -> None:
    result = subprocess.run([*DRIFTWATCH, command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout.startswith(f"usage: driftwatch {command}")


def test_python_m_driftwatch_help_from_the_repository_root() -> None:
    """``python -m driftwatch --help`` in a checkout (no ``-P``: the source folder is on the path)."""
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-m", "driftwatch", "--help"], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: driftwatch"), result.stdout[:200]
    assert all(command in result.stdout for command in COMMANDS if " " not in command)
