"""The command line's one logging pipeline: stdlib ``logging`` rendered by structlog's ``ProcessorFormatter``.

Every log line of a command goes one way: records of the stdlib loggers (``logging.getLogger
("driftwatch")`` in the library, and third-party ones) and events of the structlog loggers from
``structured()`` (serve's receiver and console alerts) meet in one handler on the root logger, which
adds level, logger name and a UTC timestamp and renders them as one JSON object per line when stderr
is not a terminal, or in structlog's readable console form on a terminal. driftwatch's own loggers
log from INFO (``restored the checkpoint … and replayed N journal entries``), others from WARNING.

Only the command line sets this up, for the time one command runs (``logging_pipeline()`` in
``main()``): ``import driftwatch`` never touches the host's logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog

__all__ = ["formatter", "logging_pipeline", "structured"]

#: What every line carries, whichever logger it came from.
_SHARED: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _Render:
    """JSON lines when stderr is not a terminal, the console form on a terminal; decided per line,
    since the same process can have its stderr redirected (and tests swap ``sys.stderr``)."""

    def __init__(self) -> None:
        self._json = structlog.processors.JSONRenderer()
        self._exception = structlog.processors.format_exc_info
        self._console = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        if _isatty():
            return str(self._console(logger, name, event))
        return str(self._json(logger, name, self._exception(logger, name, event)))


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def formatter() -> structlog.stdlib.ProcessorFormatter:
    """The formatter for stdlib records and structlog events alike."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _Render()],
    )


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (like logging's last resort)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def structured(name: str) -> Any:
    """A structlog logger (``logger.warning("event", key=value)``) whose events go through the pipeline."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


@contextlib.contextmanager
def logging_pipeline() -> Iterator[None]:
    """Routes every log record to stderr through ``formatter()`` while the block runs, and Python
    warnings and uncaught exceptions in threads too; puts the previous logging set-up back after."""
    root, ours = logging.getLogger(), logging.getLogger("driftwatch")
    handler = _StderrHandler()
    handler.setFormatter(formatter())
    level = ours.level
    showwarning = warnings.showwarning
    excepthook = threading.excepthook

    def thread_failed(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        thread = args.thread.name if args.thread is not None else "?"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        ours.error("driftwatch: uncaught exception in thread %s", thread, exc_info=exc_info)  # type: ignore[arg-type]

    root.addHandler(handler)
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)
    logging.captureWarnings(True)
    threading.excepthook = thread_failed
    try:
        yield
    finally:
        threading.excepthook = excepthook
        if warnings.showwarning is not showwarning:  # we turned the capture on: turn it off again
            logging.captureWarnings(False)
        ours.setLevel(level)
        root.removeHandler(handler)
