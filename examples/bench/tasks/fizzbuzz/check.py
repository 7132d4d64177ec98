"""Check for the 'fizzbuzz' task: exit 0 when solution.py is right."""

from solution import fizzbuzz  # type: ignore[import-not-found]

assert [fizzbuzz(n) for n in (1, 3, 5, 15)] == ["1", "Fizz", "Buzz", "FizzBuzz"]
