"""Check for the 'add' task: exit 0 when solution.py is right."""

from solution import add  # type: ignore[import-not-found]

assert add(2, 3) == 5
assert add(-1, 1) == 0
