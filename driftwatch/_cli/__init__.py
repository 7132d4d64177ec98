"""The ``driftwatch`` command line; ``main.main`` is the console script and ``python -m driftwatch``.

- ``main``: ``main()`` wires the subcommands below, in the order ``--help`` lists them
- one module per subcommand, each with ``add_parser(subparsers)`` and ``run(args) -> exit status``:
  ``demo``, ``replay``, ``report``, ``alert`` (``alert test``), ``ingest`` (``claude-code``,
  ``junit``), ``compare``, ``serve``, ``status``, ``bench`` (``bench run``)
- ``logs``: the one logging pipeline (stdlib ``logging`` through structlog's ``ProcessorFormatter``:
  JSON lines when stderr is not a terminal), set up only while a command runs
- ``shared``: alert printing, detection over outcomes and outcome JSONL, for several subcommands
- ``progress``: the progress bar on a terminal
- ``remote``: reading a running ``driftwatch serve``'s read API (``status``, ``compare --url``,
  ``report --url``)
"""

__all__ = [
    "alert",
    "bench",
    "compare",
    "demo",
    "ingest",
    "logs",
    "main",
    "progress",
    "remote",
    "replay",
    "report",
    "serve",
    "shared",
    "status",
]
