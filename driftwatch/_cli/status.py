"""``driftwatch status``: the streams of a running ``driftwatch serve``, those needing attention first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from driftwatch._cli.remote import RemoteError, add_remote_arguments, get_json

__all__ = ["add_parser", "run"]

_MARK = {"confirmed": "!!", "suspected": "? ", "resolved": "ok", "warming_up": "..", "quiet": "  "}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="streams of a running `driftwatch serve`, those needing attention first",
        description="Ask a running `driftwatch serve` (its read API) for every stream: the state of each "
        "signal (confirmed, suspected, resolved, warming_up, quiet), baseline and current estimates with "
        "95%% intervals, and the last alert; confirmed and suspected first; then the open incidents "
        "(alerts grouped by cause, one page each) and open alerts. A table, or JSON with --json. "
        "Exit code 0, or 2 when the service cannot be read.\n\n"
        "examples:\n"
        "  driftwatch status\n"
        "  driftwatch status --url https://drift.internal:4318 --token $DRIFTWATCH_TOKEN --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_remote_arguments(p, optional=False)
    p.add_argument(
        "--json", action="store_true", help="print the streams, open incidents and open alerts as JSON"
    )
    p.add_argument(
        "--all", action="store_true", help="list every signal of every stream, quiet ones too (table only)"
    )
    p.set_defaults(run=run)


def _estimate(e: dict[str, Any] | None, signal: str) -> str:
    if not e or e.get("mean") is None:
        return "-"
    fmt = ".1%" if signal == "success" else ".3g"
    low, high = e.get("ci_low"), e.get("ci_high")
    interval = f" [{low:{fmt}}, {high:{fmt}}]" if low is not None and high is not None else ""
    return f"{e['mean']:{fmt}}{interval} n={e['n']}"


def _last(alert: dict[str, Any] | None) -> str:
    if not alert:
        return "-"
    parts = (alert.get("status"), alert.get("signal"), alert.get("direction"), alert.get("detected_at"))
    return " ".join(str(p) for p in parts if p)


def table(streams: list[dict[str, Any]], every: bool) -> str:
    """The status table: one row per signal that is not quiet (every signal with ``every``)."""
    rows = [("", "STATE", "STREAM", "SIGNAL", "BASELINE", "CURRENT", "LAST ALERT")]
    quiet = 0
    for stream in streams:
        shown = [s for s in stream["signals"] if every or s["state"] != "quiet"]
        if not shown:
            quiet += 1
            continue
        for s in shown:
            rows.append(
                (
                    _MARK.get(s["state"], "  "),
                    s["state"],
                    stream["key"],
                    s["signal"],
                    _estimate(s["baseline"], s["signal"]),
                    _estimate(s["current"], s["signal"]),
                    _last(s["last_alert"]),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if quiet:
        lines.append(f"{quiet} more streams quiet (--all lists them)")
    if not streams:
        lines.append("no streams yet")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        streams = get_json(args.url, "/api/v1/streams", args.token)
        alerts = get_json(args.url, "/api/v1/alerts", args.token, limit="20")
    except RemoteError as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 2
    try:
        found = get_json(args.url, "/api/v1/incidents", args.token, limit="50")["incidents"]
    except RemoteError:  # a service from before the incidents endpoint: show what it has
        found = []
    incidents = [i for i in found if i["state"] == "open"]
    if args.json:
        body = {"url": args.url, **streams, "open_alerts": alerts["open"], "open_incidents": incidents}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return 0
    sys.stdout.write(table(streams["streams"], args.all))
    if incidents:
        sys.stdout.write(f"\n{len(incidents)} open incidents:\n")
        for i in incidents:
            moved = ", ".join(f"{m['signal']} {m['direction']}" for m in i["signals"][:5])
            more = f" (+{len(i['signals']) - 5})" if len(i["signals"]) > 5 else ""
            paged = "paged" if i["paged"] else "suspected, not paged"
            sys.stdout.write(
                f"  {i['id']} {paged}: {len(i['signals'])} signals in {i['streams']} streams since "
                f"{i['first_change']}: {moved}{more}\n"
            )
            if i.get("summary"):
                sys.stdout.write(f"    {i['summary']}\n")
    opened = alerts["open"]
    if opened:
        sys.stdout.write(f"\n{len(opened)} open alerts:\n")
        for a in opened:
            sys.stdout.write(f"  [{a['status']}] {a['message']} (id {a['id']})\n")
    return 0
