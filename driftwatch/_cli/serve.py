"""``driftwatch serve``: the OTLP receiver, journal and detection (the work is in ``_serve/``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from driftwatch._config import ConfigError, load_config

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="OTLP receiver (HTTP and gRPC) for traces, logs and metrics",
        description="Receive OTLP over HTTP (protobuf or JSON, gzip) and gRPC for traces, logs and metrics. "
        "Binds 127.0.0.1 by default; any other address needs a bearer token (config key 'token' or "
        "DRIFTWATCH_TOKEN). TLS with config keys tls_cert and tls_key. GET /healthz, /readyz, /stats and "
        "/metrics (Prometheus) on the HTTP port. Every accepted payload is written to the state file "
        "before it is acknowledged, and detector state is checkpointed there: after a crash or kill -9 "
        "the service restores it and replays the rest, losing nothing it acknowledged. Alerts go to "
        "the console, --alerts-out, configured notifiers and, with OTEL_EXPORTER_OTLP_ENDPOINT (and "
        "OTEL_EXPORTER_OTLP_HEADERS, e.g. x-honeycomb-team=KEY), to your OTLP backend.\n\n"
        "examples:\n"
        "  driftwatch serve --state /var/lib/driftwatch/state.db --alerts-out alerts.jsonl\n"
        "  OTEL_EXPORTER_OTLP_ENDPOINT=https://api.honeycomb.io \\\n"
        "    OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=$KEY driftwatch serve --config driftwatch.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="YAML config file")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, metavar="PORT", help="OTLP/HTTP port (default 4318)")
    serve.add_argument("--grpc-port", type=int, metavar="PORT", help="OTLP/gRPC port (default 4317)")
    serve.add_argument(
        "--alerts-out",
        metavar="PATH",
        help="append alerts as Alert JSON lines to PATH (kept across restarts)",
    )
    serve.add_argument(
        "--state",
        metavar="PATH",
        help="SQLite state file: journal and checkpoints (default driftwatch-state.db)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from driftwatch._cli.logs import structured
    from driftwatch._serve.durable import limit_malloc_arenas
    from driftwatch._serve.receiver import check_bind
    from driftwatch._serve.service import run_serve
    from driftwatch._serve.store import StateError

    # Before any of serve's threads exist: one malloc arena, so that the trim after each checkpoint
    # can return every free page (the service's own process; the in-process monitor never does this).
    limit_malloc_arenas()

    try:
        config = load_config(
            args.config,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            alerts_out=args.alerts_out,
            state=args.state,
        )
        check_bind(config)
        # Receiver events and console alerts through the same pipeline as every other log line.
        return run_serve(config, logger=structured("driftwatch.serve"))
    except (ConfigError, StateError) as exc:
        # A log line like every other of serve's (JSON when stderr is not a terminal), not plain text.
        logging.getLogger("driftwatch").error("driftwatch: %s", exc)
        return 2
