"""Notifiers' pages in the state file: what each notifier decided and delivered, across restarts.

Kept so that a restart neither pages twice nor leaves a page open forever. The table lives in
the ``StateStore``'s file (``StateStore.notifier_pages``) and is written on its appenders'
connection, one statement per transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PAGES_SCHEMA", "NotifierPages", "Page"]

# Added after state format 1 without changing it: created when missing, ignored by older versions.
# ``notifier`` names the destination (type and a digest of its URL and key, never the secret
# itself); ``status`` is the last status decided for the alert, ``alert`` the pickled Alert to send
# (NULL once resolved and sent); ``announced`` is 1 once a trigger was delivered, ``queued`` 1 while
# the last decision is not yet delivered or given up (sent again after a restart).
PAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifier_page (
    notifier TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    alert BLOB,
    announced INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 1,
    updated REAL NOT NULL,
    PRIMARY KEY (notifier, alert_id)
);
"""
#: Resolved pages kept per notifier (to recognise a resolve replayed from the journal).
_RESOLVED_KEPT = 10_000

#: Runs a function with the store's write connection, in its write lock, errors as StateError.
OnWriter = Callable[[Callable[[sqlite3.Connection], Any]], Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One notifier's record of one alert (``NotifierPages.pages``)."""

    alert_id: str
    status: str
    alert: bytes | None
    announced: bool
    queued: bool


class NotifierPages:
    """The ``notifier_page`` table of one state file (``StateStore.notifier_pages``)."""

    def __init__(self, on_writer: OnWriter) -> None:
        self._on_writer = on_writer

    def put_page(self, notifier: str, alert_id: str, status: str, alert: bytes) -> None:
        """A notifier decided to send ``status`` for an alert: record it as queued (on disk on return)."""
        self._write(
            "INSERT INTO notifier_page (notifier, alert_id, status, alert, queued, updated) "
            "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (notifier, alert_id) DO UPDATE SET "
            "status = excluded.status, alert = excluded.alert, queued = 1, updated = excluded.updated",
            (notifier, alert_id, status, alert, time.time()),
        )

    def page_sent(self, notifier: str, alert_id: str, status: str, *, announced: bool) -> None:
        """``status`` of an alert was delivered (``announced``: a trigger) or given up: not queued any
        more, unless a later status was decided meanwhile. A resolved page keeps only id and status."""
        self._write(
            "UPDATE notifier_page SET announced = max(announced, ?), "
            "queued = CASE WHEN status = ? THEN 0 ELSE queued END, "
            "alert = CASE WHEN status = ? AND status = 'resolved' THEN NULL ELSE alert END, updated = ? "
            "WHERE notifier = ? AND alert_id = ?",
            (int(announced), status, status, time.time(), notifier, alert_id),
        )

    def pages(self, notifier: str) -> list[Page]:
        """A notifier's pages, oldest first; resolved ones beyond the newest 10,000 are dropped first."""

        def run(conn: sqlite3.Connection) -> list[Any]:
            conn.execute(
                "DELETE FROM notifier_page WHERE notifier = ? AND status = 'resolved' AND queued = 0 "
                "AND rowid NOT IN (SELECT rowid FROM notifier_page WHERE notifier = ? "
                "AND status = 'resolved' AND queued = 0 ORDER BY updated DESC LIMIT ?)",
                (notifier, notifier, _RESOLVED_KEPT),
            )
            return conn.execute(
                "SELECT alert_id, status, alert, announced, queued FROM notifier_page "
                "WHERE notifier = ? ORDER BY updated",
                (notifier,),
            ).fetchall()

        rows: list[Any] = self._on_writer(run)
        return [
            Page(str(a), str(s), None if blob is None else bytes(blob), bool(ann), bool(q))
            for a, s, blob, ann, q in rows
        ]

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        """One statement in its own transaction."""
        self._on_writer(lambda conn: conn.execute(sql, params))
