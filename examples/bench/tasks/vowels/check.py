"""Check for the 'vowels' task: exit 0 when solution.py is right."""

from solution import count_vowels  # type: ignore[import-not-found]

assert count_vowels("Hello World") == 3
assert count_vowels("xyz") == 0
