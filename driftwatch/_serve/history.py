"""Outcome and alert history for ``driftwatch serve``: what a restart used to forget, kept in the state file.

Every outcome the journal's worker decodes (never content: an Outcome holds none) and every alert
the monitor raises is buffered here and written **in the checkpoint's transaction**
(``StateStore.save_checkpoint(also=...)``), so the history holds exactly the outcomes of the
journal entries the checkpoint covers: a restart replays the entries after it and buffers their
outcomes again, never twice (and the row id, the journal sequence number and the outcome's index
in its entry, would refuse a second copy anyway). Retention is bounded by age and by size; each
checkpoint prunes what is beyond either, oldest first, and the time it took is counted.

Tables (created when missing, ignored by older versions, in the same SQLite file):
``history_stream`` (stream key → small id), ``history_outcome`` (one row per outcome: id, event
time, stream, model, size, the outcome JSON; indexed by (stream, time) and by time) and
``history_alert`` (one row per alert id and status).
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from driftwatch._alerting.alerts import Alert
from driftwatch._errors import StateError
from driftwatch._outcome import Outcome, parse_outcome, stream_key

__all__ = ["MAX_BUFFERED", "History", "HistorySink", "HistoryStats", "decode_cursor", "encode_cursor"]

#: A row id is ``seq << ID_BITS | index``: the journal entry and the outcome's place in it.
ID_BITS = 24
#: Rows pruned per checkpoint at most (beyond this, the next checkpoints carry on): keeps each
#: checkpoint's transaction, which holds up the receivers' appends, short.
PRUNE_BATCH = 50_000
#: Outcomes buffered at most: beyond this a checkpoint is due (``Durable``) whatever its interval,
#: so the buffer (about 550 bytes of Python heap per outcome) stays under ~11 MiB. Without it, 5 s
#: at 7,800 outcomes/s, or a backlog drained 1,000 entries at a time, buffered 40,000-100,000.
MAX_BUFFERED = 20_000
#: Alerts kept at most (the newest), whatever their age.
ALERTS_KEPT = 10_000
#: A row's bytes beyond its outcome JSON (row header, id, time, stream id, model, index entries):
#: what ``history_max_mb`` counts is this plus the JSON, close to the file space a row takes.
ROW_OVERHEAD = 48
#: ``json.dumps(..., separators=(",", ":"))`` without building an encoder per outcome.
_encode = json.JSONEncoder(separators=(",", ":")).encode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_stream (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS history_outcome (
    id INTEGER PRIMARY KEY,  -- seq << 24 | index within the journal entry: a replay cannot add a copy
    time REAL NOT NULL,
    stream INTEGER NOT NULL,
    model TEXT,
    size INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_outcome_stream_time ON history_outcome (stream, time);
CREATE INDEX IF NOT EXISTS history_outcome_time ON history_outcome (time);
CREATE TABLE IF NOT EXISTS history_alert (
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    stream TEXT NOT NULL,
    signal TEXT NOT NULL,
    time REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (id, status)
);
CREATE INDEX IF NOT EXISTS history_alert_time ON history_alert (time);
"""


@dataclass
class HistoryStats:
    """What the history holds and what keeping it cost (``GET /stats``, under ``handler.history``)."""

    rows: int = 0
    bytes: int = 0
    """Bytes counted against ``history_max_mb``: each row's outcome JSON plus ``ROW_OVERHEAD``."""
    buffered: int = 0
    """Outcomes processed but not yet written (they go with the next checkpoint)."""
    written: int = 0
    pruned_rows: int = 0
    pruned_bytes: int = 0
    prunes: int = 0
    prune_seconds: float = 0.0
    """Total time spent pruning, inside checkpoints."""
    prune_max_seconds: float = 0.0
    write_seconds: float = 0.0
    """Total time spent writing history rows, inside checkpoints (pruning excluded)."""


def encode_cursor(at: float, row: int) -> str:
    """An opaque page cursor: the last row returned (time, id)."""
    return base64.urlsafe_b64encode(f"{at!r}:{row}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, int]:
    """The (time, id) of ``encode_cursor``; ValueError when the text is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, _, row = raw.partition(":")
        value = (float(at), int(row))
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"cursor {text[:40]!r} is not one this service handed out") from None
    if not math.isfinite(value[0]):
        raise ValueError(f"cursor {text[:40]!r} is not one this service handed out")
    return value


@dataclass(frozen=True, slots=True)
class Query:
    """Which outcomes to read: SQL-side filters (exact); ``keep`` filters the decoded outcomes after."""

    stream: str | None = None
    since: float | None = None
    until: float | None = None
    keep: Callable[[Outcome], bool] | None = None


class History:
    """The outcome and alert history in a state file: buffered by the worker, written with checkpoints.

    ``add`` and ``add_alert`` are called on the journal's worker thread only; ``flush`` runs inside
    the checkpoint's transaction on that thread, ``committed`` after it. Reads (``outcomes``,
    ``alerts``, ``streams``) come from the HTTP threads on a connection of their own.
    """

    def __init__(
        self,
        path: str,
        *,
        stream_labels: Sequence[str] = (),
        max_age_s: float = 30 * 86400.0,
        max_bytes: int = 1024 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not max_age_s > 0 or max_bytes < 1:
            raise ValueError(f"history retention must be positive, got {max_age_s} s and {max_bytes} bytes")
        self.path = path
        self.stream_labels = list(stream_labels)
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.stats = HistoryStats()
        self._clock = clock
        self._outcomes: list[tuple[int, float, str, str | None, str]] = []  # id, time, key, model, json
        self._alerts: dict[tuple[str, str], tuple[str, str, float, str]] = {}
        self._pending: HistoryStats | None = None
        self._new_ids: dict[str, int] = {}
        self._shared: dict[str, str] = {}
        self._read_lock = threading.Lock()
        try:
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._reader.executescript(_SCHEMA)
            rows, size, newest = self._reader.execute(
                "SELECT count(*), coalesce(sum(size), 0), max(time) FROM history_outcome"
            ).fetchone()
            self._stream_ids = dict(self._reader.execute("SELECT key, id FROM history_stream"))
            self._reader.execute("PRAGMA query_only = 1")
        except sqlite3.Error as exc:
            raise StateError(f"state file {path}: cannot keep the outcome history ({exc})") from None
        self.stats.rows, self.stats.bytes = int(rows), int(size)
        #: The newest event time kept: age is counted back from it (see ``cutoff``).
        self.newest = -math.inf if newest is None else float(newest)

    # -- the worker's side -----------------------------------------------------------------------
    def add(self, seq: int, outcomes: Sequence[Outcome]) -> None:
        """Buffer the outcomes of journal entry ``seq`` (in the order the entry decoded to)."""
        labels = self.stream_labels
        out = self._outcomes
        # Each stream key and model is kept once in the buffer, whatever the number of its outcomes.
        shared = self._shared
        self.newest = max(self.newest, max(o.time for o in outcomes)) if outcomes else self.newest
        first = seq << ID_BITS
        for index, outcome in enumerate(outcomes):
            key = stream_key(outcome, labels)
            model = outcome.model
            out.append(
                (
                    first | index,
                    outcome.time,
                    shared.setdefault(key, key),
                    model if model is None else shared.setdefault(model, model),
                    _encode(outcome.to_dict()),
                )
            )
        self.stats.buffered = len(out)

    @property
    def full(self) -> bool:
        """The buffer holds ``MAX_BUFFERED`` outcomes or more: checkpoint now to bound memory."""
        return len(self._outcomes) >= MAX_BUFFERED

    def add_alert(self, alert: Alert) -> None:
        """Buffer an alert (the last status of an id wins per status)."""
        key = ";".join(f"{k}={v}" for k, v in alert.stream.items())
        at = float(alert.extra.get("decided_at") or alert.detected_at)
        data = json.dumps(alert.to_dict(), separators=(",", ":"), default=str)
        self._alerts[(alert.id, alert.status)] = (key, alert.signal, at, data)

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write what is buffered and prune, on ``conn`` inside the checkpoint's open transaction."""
        started = time.perf_counter()
        pending = HistoryStats(**vars(self.stats))
        ids = dict(self._stream_ids)
        rows = []
        for row_id, at, key, model, data in self._outcomes:
            stream = ids.get(key)
            if stream is None:
                conn.execute("INSERT OR IGNORE INTO history_stream (key) VALUES (?)", (key,))
                found = conn.execute("SELECT id FROM history_stream WHERE key = ?", (key,)).fetchone()
                stream = ids[key] = int(found[0])
            rows.append((row_id, at, stream, model, len(data) + ROW_OVERHEAD, data))
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO history_outcome (id, time, stream, model, size, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        added = conn.total_changes - before
        if added == len(rows):
            pending.rows += added
            pending.bytes += sum(r[4] for r in rows)
        else:  # rows already there (never by design): count again rather than guess
            pending.rows, pending.bytes = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM history_outcome"
            ).fetchone()
        pending.written += added
        conn.executemany(
            "INSERT OR REPLACE INTO history_alert (id, status, stream, signal, time, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(i, s, *rest) for (i, s), rest in self._alerts.items()],
        )
        pending.write_seconds += time.perf_counter() - started
        self._prune(conn, pending, len(rows))
        pending.buffered = 0
        self._pending = pending
        self._new_ids = ids

    def committed(self) -> None:
        """The checkpoint's transaction committed: the buffer is on disk."""
        if self._pending is None:
            return
        self._outcomes = []
        self._shared = {}
        self._alerts = {}
        self._stream_ids = self._new_ids
        self.stats = self._pending
        self._pending = None

    def rolled_back(self) -> None:
        """The checkpoint failed: keep the buffer for the next one."""
        self._pending = None

    def _prune(self, conn: sqlite3.Connection, pending: HistoryStats, added: int) -> None:
        started = time.perf_counter()
        budget = max(PRUNE_BATCH, 2 * added)
        cutoff = self.cutoff()
        # One pass over the oldest rows, in (time, id) order, up to this checkpoint's budget: first those
        # beyond the age limit; then, if what is left is over the size cap, on down to 90% of the cap (so
        # that pruning is not a per-checkpoint chore). The rows passed are then deleted in one statement.
        removed_rows = removed_bytes = 0
        last: tuple[float, int] | None = None
        target: int | None = None
        cursor = conn.execute(
            "SELECT time, id, size FROM history_outcome ORDER BY time, id LIMIT ?", (budget,)
        )
        try:
            for at, row_id, size in cursor:
                if at >= cutoff:
                    if target is None:
                        excess = pending.bytes - removed_bytes - self.max_bytes
                        target = removed_bytes + excess + self.max_bytes // 10 if excess > 0 else 0
                    if removed_bytes >= target:
                        break
                removed_rows += 1
                removed_bytes += size
                last = (at, row_id)
        finally:
            cursor.close()
        if last is not None:
            # Exactly the rows passed: (time, id) is unique, and this is the transaction that read them.
            at, row_id = last
            conn.execute(
                "DELETE FROM history_outcome WHERE time <= ? AND (time < ? OR id <= ?)", (at, at, row_id)
            )
        conn.execute(
            "DELETE FROM history_alert WHERE time < ? OR rowid NOT IN "
            "(SELECT rowid FROM history_alert ORDER BY time DESC LIMIT ?)",
            (cutoff, ALERTS_KEPT),
        )
        if removed_rows:
            took = time.perf_counter() - started
            pending.rows -= removed_rows
            pending.bytes -= removed_bytes
            pending.pruned_rows += removed_rows
            pending.pruned_bytes += removed_bytes
            pending.prunes += 1
            pending.prune_seconds += took
            pending.prune_max_seconds = max(pending.prune_max_seconds, took)

    def cutoff(self) -> float:
        """Outcomes and alerts older than this (event time) are pruned: ``max_age`` before the newest
        outcome kept, so recorded or replayed data are kept as long as live data; the newest counts
        as at most a day past the wall clock, so one outcome with a far-future time cannot prune
        the rest."""
        return min(self.newest, self._clock() + 86400.0) - self.max_age_s

    # -- the readers' side -----------------------------------------------------------------------
    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read_lock:
            try:
                return self._reader.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"state file {self.path}: cannot read the history ({exc})") from None

    def outcomes(
        self, query: Query, *, limit: int = 1000, after: tuple[float, int] | None = None, scan: int = 20_000
    ) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
        """Up to ``limit`` outcomes (outcome JSONL dicts) in (time, id) order after ``after``; and where
        to go on from (None at the end). At most ``scan`` rows are read per call: a selective ``keep``
        may return fewer than ``limit`` and a position to continue from."""
        where, params = [], []
        if query.stream is not None:
            stream = self._read("SELECT id FROM history_stream WHERE key = ?", (query.stream,))
            if not stream:
                return [], None
            where.append("stream = ?")
            params.append(stream[0][0])
        if query.since is not None:
            where.append("time >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("time < ?")
            params.append(query.until)
        base = "SELECT id, time, data FROM history_outcome"
        batch = max(limit, min(scan, 4 * limit))
        out: list[dict[str, Any]] = []
        seen = 0
        position = after
        keep = query.keep
        while seen < scan:
            clauses, values = list(where), list(params)
            if position is not None:
                clauses.append("time >= ? AND (time > ? OR id > ?)")
                values.extend((position[0], position[0], position[1]))
            sql = base + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY time, id LIMIT ?"
            rows = self._read(sql, [*values, batch])
            for row_id, at, data in rows:
                seen += 1
                position = (float(at), int(row_id))
                record = json.loads(data)
                if keep is None or keep(_outcome(record)):
                    out.append(record)
                    if len(out) >= limit:
                        return out, position
            if len(rows) < batch:
                return out, None
        return out, position

    def alerts(self, *, limit: int = 100, stream: str | None = None) -> list[dict[str, Any]]:
        """The newest alerts (every status change is one), newest first."""
        if stream is None:
            rows = self._read(
                "SELECT data FROM history_alert ORDER BY time DESC, rowid DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._read(
                "SELECT data FROM history_alert WHERE stream = ? ORDER BY time DESC, rowid DESC LIMIT ?",
                (stream, limit),
            )
        return [json.loads(r[0]) for r in rows]

    def last_alerts(self) -> dict[tuple[str, str], tuple[float, dict[str, Any]]]:
        """Each (stream key, signal)'s newest alert (by decision time), with that time."""
        rows = self._read(
            "SELECT stream, signal, time, data FROM (SELECT stream, signal, time, data, row_number() "
            "OVER (PARTITION BY stream, signal ORDER BY time DESC, rowid DESC) AS r FROM history_alert) "
            "WHERE r = 1",
            (),
        )
        return {(str(k), str(s)): (float(t), json.loads(d)) for k, s, t, d in rows}

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()

    def iter_all(self, query: Query, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every outcome of ``query``, page by page (tests, benchmarks)."""
        after = None
        while True:
            records, after = self.outcomes(query, limit=page, after=after)
            yield from records
            if after is None:
                return


def _outcome(record: dict[str, Any]) -> Outcome:
    return parse_outcome(record, where="history")


class HistorySink:
    """An alert sink that keeps every alert in the history (written with the next checkpoint)."""

    def __init__(self, history: History) -> None:
        self.history = history

    def export(self, alert: Alert) -> None:
        self.history.add_alert(alert)

    def shutdown(self) -> None:
        pass
