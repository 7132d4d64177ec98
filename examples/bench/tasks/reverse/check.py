"""Check for the 'reverse' task: exit 0 when solution.py is right."""

from solution import reverse_words  # type: ignore[import-not-found]

assert reverse_words("a b  c") == "c b a"
assert reverse_words("") == ""
