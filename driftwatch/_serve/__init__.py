"""The ``driftwatch serve`` driver: OTLP in, journal first, detection in order, checkpoints.

- ``receiver``: OTLP/HTTP and OTLP/gRPC transports, request parsing and validation
- ``service``: the receiver's handler (``DriftService``) and the journal's decoder, ``run_serve``
- ``durable``: journal-first processing: restore, replay, process in order, checkpoint
- ``store``: the SQLite state file (journal and checkpoints)
- ``pages``: the notifiers' pages in that file (``StateStore.notifier_pages``)
"""

__all__ = ["durable", "pages", "receiver", "service", "store"]
