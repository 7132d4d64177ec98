"""The ``driftwatch`` command line; ``main.main`` is the console script and ``python -m driftwatch``.

- ``main``: the parser and the replay, ingest, demo, alert test, serve and bench run handlers
- ``compare``, ``junit``: the ``compare`` and ``ingest junit`` subcommands
- ``shared``: alert printing, detection over outcomes and outcome JSONL, for several subcommands
- ``progress``: the progress bar on a terminal
"""

__all__ = ["compare", "junit", "main", "progress", "shared"]
