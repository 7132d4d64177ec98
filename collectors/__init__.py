"""Where outcomes come from: the Anthropic SDK wrapper, task context, outcome files."""

from __future__ import annotations
