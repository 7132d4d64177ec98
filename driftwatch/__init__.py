"""driftwatch: catch silent quality drift in AI agents.

>>> import driftwatch
>>> client = driftwatch.watch(anthropic.Anthropic())          # doctest: +SKIP
>>> with driftwatch.task("fix-tests", language="python") as t:  # doctest: +SKIP
...     t.record(success=run_tests())
"""

from __future__ import annotations

__version__ = "0.1.0"

from driftwatch._alerts import Alert, ConsoleSink, InMemorySink, JsonlSink
from driftwatch._config import Config, ConfigError, load_config
from driftwatch._monitor import Monitor
from driftwatch._outcome import Outcome, OutcomeError
from driftwatch._runtime import configure, get_runtime, shutdown
from driftwatch.collectors._anthropic import watch
from driftwatch.collectors._task import Task, current_task, task

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
