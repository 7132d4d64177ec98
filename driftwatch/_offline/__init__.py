"""The offline driver: commands over recorded outcomes, and the demo.

- ``compare``: before/after comparison of two groups of outcomes
- ``report``: the HTML report (and its ``driftwatch report`` handler)
- ``bench``: ``driftwatch bench run``, an agent over a task suite
- ``demo``, ``fake_api``: ``driftwatch demo`` and the local fake Anthropic API it runs against
"""

__all__ = ["bench", "compare", "demo", "fake_api", "report"]
