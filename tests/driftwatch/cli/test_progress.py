"""The command-line progress bar: drawn on a terminal, silent into pipes."""

from __future__ import annotations

import io

from driftwatch._cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_ends_the_line() -> None:
    """On a terminal the bar shows share and counts and ends with a newline at the total."""
    out = Terminal()
    progress = Progress(4, "outcomes", stream=out)
    for i in range(1, 5):
        progress.update(i)
    text = out.getvalue()
    assert "100%" in text and "4/4 outcomes" in text and text.endswith("\n")
    assert "[" + "#" * 28 + "]" in text


def test_progress_is_silent_into_a_pipe() -> None:
    """Not a terminal (cron, CI, a pipe): nothing is written."""
    out = io.StringIO()
    progress = Progress(1000, "outcomes", stream=out)
    for i in range(1, 1001):
        progress.update(i)
    assert out.getvalue() == ""
