"""driftwatch: catch silent quality drift in AI agents.

>>> import driftwatch
>>> client = driftwatch.watch(anthropic.Anthropic())          # doctest: +SKIP
>>> with driftwatch.task("fix-tests", language="python") as t:  # doctest: +SKIP
...     t.record(success=run_tests())
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any

from driftwatch._version import __version__


class _SiblingFolders:
    """Finds exactly ``driftwatch.collectors`` and ``driftwatch.detectors`` in a source checkout.

    They live in the top-level folders ``collectors/`` and ``detectors/``, which the installed
    package (wheel or editable install, setuptools' package-dir mapping) places inside
    ``driftwatch/``. When python runs in the repository root, the source folder ``driftwatch/`` on
    ``sys.path`` shadows the installed package and has no such subfolders, so ``import
    driftwatch.collectors`` would fail. This finder, added last to ``sys.meta_path`` only in that
    case, looks for those two names next to ``driftwatch/`` and for nothing else.
    """

    NAMES = frozenset({"driftwatch.collectors", "driftwatch.detectors"})

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.NAMES:
            return None
        return PathFinder.find_spec(fullname, [self.root])


def _add_sibling_folders() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    installed = os.path.isdir(os.path.join(here, "collectors"))
    if installed or not os.path.isfile(os.path.join(root, "collectors", "__init__.py")):
        return
    if not any(getattr(finder, "root", None) == root for finder in sys.meta_path):  # once, reload too
        sys.meta_path.append(_SiblingFolders(root))


_add_sibling_folders()

if TYPE_CHECKING:
    from driftwatch._alerting.alerts import Alert, ConsoleSink, InMemorySink, JsonlSink
    from driftwatch._config import Config, load_config
    from driftwatch._errors import ConfigError
    from driftwatch._monitor import Monitor
    from driftwatch._outcome import Outcome, OutcomeError
    from driftwatch._runtime import configure, get_runtime, shutdown
    from driftwatch.collectors._agent_sdk import AgentRun, agent_run
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
    "AgentRun": "driftwatch.collectors._agent_sdk",
    "agent_run": "driftwatch.collectors._agent_sdk",
    "Task": "driftwatch.collectors._task",
    "current_task": "driftwatch.collectors._task",
    "task": "driftwatch.collectors._task",
}

__all__ = [
    "AgentRun",
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
    "agent_run",
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
