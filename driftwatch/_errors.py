"""driftwatch's own errors, in a module of their own so that any module can raise them.

Kept apart from the code that raises them most: the config's notifier and marker specs raise
ConfigError without importing the config loader (which imports them), and the monitor raises
StateError without importing the SQLite store.
"""

from __future__ import annotations

__all__ = ["ConfigError", "StateError"]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names file, line, key and valid form."""


class StateError(RuntimeError):
    """The state file cannot be used; the message names the path, what is wrong and the fix."""
