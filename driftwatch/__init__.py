"""driftwatch: catch silent quality drift in AI agents.

>>> import driftwatch
>>> client = driftwatch.watch(anthropic.Anthropic())          # doctest: +SKIP
>>> with driftwatch.task("fix-tests", language="python") as t:  # doctest: +SKIP
...     t.record(success=run_tests())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from driftwatch._version import __version__

if TYPE_CHECKING:
    from driftwatch._alerting.alerts import Alert, ConsoleSink, InMemorySink, JsonlSink
    from driftwatch._config import Config, load_config
    from driftwatch._errors import ConfigError
    from driftwatch._monitor import Monitor
    from driftwatch._outcome import Outcome, OutcomeError
    from driftwatch._runtime import configure, get_runtime, shutdown
    from driftwatch.collectors._anthropic import watch
    from driftwatch.collectors._task import Task, current_task, task

# Imported on first use (PEP 562): `import driftwatch` alone must stay cheap, because the pytest
# plugin (entry point pytest11) is imported by every pytest run in an environment that has
# driftwatch installed, and importing the anthropic SDK eagerly cost each of them ~2 s.
_LAZY = {
    "Alert": "driftwatch._alerting.alerts",
    "ConsoleSink": "driftwatch._alerting.alerts",
    "InMemorySink": "driftwatch._alerting.alerts",
    "JsonlSink": "driftwatch._alerting.alerts",
    "Config": "driftwatch._config",
    "ConfigError": "driftwatch._errors",
    "load_config": "driftwatch._config",
    "Monitor": "driftwatch._monitor",
    "Outcome": "driftwatch._outcome",
    "OutcomeError": "driftwatch._outcome",
    "configure": "driftwatch._runtime",
    "get_runtime": "driftwatch._runtime",
    "shutdown": "driftwatch._runtime",
    "watch": "driftwatch.collectors._anthropic",
    "Task": "driftwatch.collectors._task",
    "current_task": "driftwatch.collectors._task",
    "task": "driftwatch.collectors._task",
}

__all__ = [
    "Alert",
    "Config",
    "ConfigError",
    "ConsoleSink",
    "InMemorySink",
    "JsonlSink",
    "Monitor",
    "Outcome",
    "OutcomeError",
    "Task",
    "__version__",
    "configure",
    "current_task",
    "get_runtime",
    "load_config",
    "shutdown",
    "task",
    "watch",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'driftwatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
