"""Durable state for ``driftwatch serve``: a journal of accepted payloads and a checkpoint, in SQLite.

The receiver appends each accepted payload to the journal and acknowledges it only after
``append`` returns: the row is then on disk (WAL mode with ``synchronous=FULL`` syncs the log
before each commit returns), so a ``kill -9`` or power loss cannot lose it. The worker reads the
journal in order, and every so often saves a checkpoint (the monitor's state and the sequence
number it covers) and drops the journal rows the checkpoint covers, in one transaction, so the
file stays bounded by one checkpoint plus the entries since.

One file, stdlib ``sqlite3``, nothing to run beside it. The file is marked as ours
(``PRAGMA application_id``) and carries its format version (``PRAGMA user_version``), so a wrong
path or a file from a newer driftwatch is refused with a message instead of being overwritten.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from driftwatch._errors import StateError
from driftwatch._serve.pages import PAGES_SCHEMA, NotifierPages, Page

__all__ = ["FORMAT_VERSION", "GroupCommitStats", "Page", "StateError", "StateStore", "StoreStats"]

#: "drft": marks a SQLite file as a driftwatch state file (the header's application id).
APPLICATION_ID = 0x64726674
#: Format of the tables below; a file with a higher number comes from a newer driftwatch.
FORMAT_VERSION = 1
#: Rows fetched per query while iterating the journal, so appends are not held up for long.
_BATCH = 256
#: Payload bytes per batch at most (the batch stops at the row that reaches it): 256 rows of
#: 100-span requests (30 KB each) were a 7.5 MiB block, taken and given back to the allocator
#: with the backlog, that made the soak's RSS jump between two levels (docs/performance.md).
_BATCH_BYTES = 1024 * 1024

_TABLES = frozenset({"journal", "checkpoint", "checkpoint_part"})
_SCHEMA = """
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a seq is never reused after truncation
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    blob BLOB NOT NULL,
    saved_at REAL NOT NULL
);
-- Named pieces of the checkpoint that change independently (a monitor's streams): a checkpoint
-- rewrites only the pieces that changed since the last one, in the same transaction as the rest.
CREATE TABLE checkpoint_part (
    name TEXT PRIMARY KEY,
    blob BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the state file holds now: journal entries after the checkpoint and their payload bytes."""

    journal_entries: int
    journal_bytes: int
    last_seq: int
    checkpoint_seq: int | None
    checkpoint_bytes: int


@dataclass
class GroupCommitStats:
    """Journal commits since the store was opened: ``batches / commits`` appends shared each sync."""

    commits: int = 0
    batches: int = 0
    failed: int = 0
    """Commits that raised (every append in them raised too, none was acknowledged)."""


class _Batch:
    """One ``append_many`` call waiting for its group's commit."""

    __slots__ = ("done", "error", "rows", "seqs")

    def __init__(self, rows: list[tuple[str, bytes]]) -> None:
        self.rows = rows
        self.seqs: list[int] = []
        self.error: BaseException | None = None
        self.done = False


class StateStore:
    """The journal and checkpoint of one ``driftwatch serve`` instance in one SQLite file.

    Thread-safe: any number of threads may ``append``; one worker reads and checkpoints. Appends
    and the worker use separate connections (WAL lets a reader run beside a writer), each behind
    its own lock because a ``sqlite3`` connection must not be used by two threads at once; a
    checkpoint also takes the append lock, since SQLite has one writer at a time. Appends that
    arrive while a commit is in progress share the next one (group commit: one transaction and
    one disk sync for all of them, ``group_commits`` counts how many). Only one
    process may open a state file (``path.lock``); ``busy_timeout`` covers outside readers such
    as the ``sqlite3`` shell.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.db")
    >>> with StateStore(path) as store:
    ...     store.append("otlp-logs", b"payload")
    ...     store.save_checkpoint(1, b"monitor state")
    ...     store.load_checkpoint(), list(store.entries_after(0))
    1
    ((1, b'monitor state'), [])
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._closed = False
        self._write_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        # Group commit (append_many): batches waiting for the commit in progress, and whether one is.
        self._group = threading.Condition(threading.Lock())
        self._pending: list[_Batch] = []
        self._leading = False
        self.group_commits = GroupCommitStats()
        #: The notifiers' pages (``driftwatch serve``'s notifiers record them here across restarts).
        self.notifier_pages = NotifierPages(self._on_writer)
        self._check_path()
        self._lock_fd = self._lock_instance()
        try:
            self._writer = self._connect(busy_timeout, create=True)
            try:
                self._worker = self._connect(busy_timeout, create=False)
            except BaseException:
                self._writer.close()
                raise
        except BaseException:
            self._unlock_instance()
            raise

    # -- opening -------------------------------------------------------------------------------
    def _check_path(self) -> None:
        path = self.path
        exists = os.path.exists(path)
        if exists and not os.path.isfile(path):
            raise self._fail("is not a file", "point the state path at a file (it is created if missing)")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise self._fail(f"has no folder {folder}", "create the folder or choose another state path")
        # WAL mode creates path-wal and path-shm beside the file, so the folder must be writable too.
        if (exists and not os.access(path, os.R_OK | os.W_OK)) or not os.access(folder, os.W_OK | os.X_OK):
            raise self._fail(
                "is read-only (the file, or its folder for the -wal and -shm files beside it)",
                "make both writable by this user or choose another state path",
            )

    def _lock_instance(self) -> int | None:
        """Hold ``path.lock`` for as long as the store is open: one instance per state file.

        Two instances on one file would each truncate the other's journal entries at their
        checkpoints. The kernel drops the lock when the process dies, ``kill -9`` included.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX; nothing to lock with
            return None
        lock_path = self.path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._fail(
                f"cannot create its lock file {lock_path} ({exc.strerror})",
                "make the folder writable by this user or choose another state path",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise self._fail(
                f"is in use by another process (it holds {lock_path})",
                "run one driftwatch serve per state file, or give each instance its own path",
            ) from None
        return fd

    def _unlock_instance(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _fail(self, what: str, fix: str) -> StateError:
        return StateError(f"state file {self.path}: {what}; {fix}")

    def _connect(self, busy_timeout: float, *, create: bool) -> sqlite3.Connection:
        path = self.path
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), never implicit.
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._fail(f"cannot be opened ({exc})", "check the path and its permissions") from None
        try:
            self._prepare(conn, create=create)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection, *, create: bool) -> None:
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise self._fail(
                f"is not a driftwatch state file ({exc})",
                "choose another state path, or move this file aside if it is a damaged state file",
            ) from None
        if app_id == 0 and not tables and create:
            self._create(conn)
            return
        if app_id != APPLICATION_ID:
            found = f"a SQLite database with tables {', '.join(sorted(tables))}" if tables else "not ours"
            raise self._fail(
                f"is not a driftwatch state file ({found}, application id {app_id:#x})",
                "choose another state path; driftwatch never overwrites a file it did not create",
            )
        if version > FORMAT_VERSION:
            raise self._fail(
                f"was written by a newer driftwatch (state format {version}; this version reads up to "
                f"{FORMAT_VERSION})",
                "upgrade driftwatch, or start this version with another state path",
            )
        if _TABLES - tables:
            raise self._fail(
                f"is damaged: tables {sorted(_TABLES - tables)} are missing",
                "move the file aside; a new one is created on start",
            )
        self._configure(conn)
        if create:
            self._run(lambda: conn.executescript(PAGES_SCHEMA))  # a file from before notifier pages
            # A damaged page surfaces here, at start, instead of mid-run; the file is bounded, so it is quick.
            problem = self._run(lambda: conn.execute("PRAGMA quick_check(1)").fetchone()[0])
            if problem != "ok":
                raise self._fail(
                    f"is damaged ({' '.join(str(problem).split())})",
                    "move the file aside (keep it for diagnosis); start afresh",
                )

    def _configure(self, conn: sqlite3.Connection) -> None:
        def run() -> None:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._fail(f"cannot use WAL mode (got {mode})", "put the state file on a local disk")
            # FULL: the WAL is synced before each commit returns, so an acknowledged append is on disk.
            conn.execute("PRAGMA synchronous = FULL")
            # The WAL is reset after each SQLite checkpoint; this keeps its file from staying large.
            conn.execute("PRAGMA journal_size_limit = 67108864")

        self._run(run)

    def _create(self, conn: sqlite3.Connection) -> None:
        # One script, one transaction: a crash while creating leaves an empty file, not half a schema.
        script = (
            f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA application_id = {APPLICATION_ID};"
            f"PRAGMA user_version = {FORMAT_VERSION};COMMIT;"
        )
        self._run(lambda: conn.executescript(script))
        self._configure(conn)
        self._run(lambda: conn.executescript(PAGES_SCHEMA))

    def _run(self, fn: Any) -> Any:
        """Run ``fn``; SQLite errors become a StateError that names the file and the fix."""
        try:
            return fn()
        except StateError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "readonly" in text or "read-only" in text:
                raise self._fail(
                    f"is read-only ({text})", "make it and its folder writable or choose another state path"
                ) from None
            if "locked" in text or "busy" in text:
                raise self._fail(
                    f"is locked by another process ({text})",
                    "run one driftwatch serve per state file, or give each instance its own path",
                ) from None
            raise self._fail(f"cannot be used ({text})", "check the disk (space, permissions)") from None
        except sqlite3.DatabaseError as exc:
            raise self._fail(
                f"is damaged ({exc})", "move the file aside (keep it for diagnosis); start afresh"
            ) from None

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of a query on the worker's connection (hold ``_worker_lock``)."""
        conn = self._worker
        rows: list[Any] = self._run(lambda: conn.execute(sql, params).fetchall())
        return rows

    # -- the journal ---------------------------------------------------------------------------
    def append(self, kind: str, body: bytes) -> int:
        """Journal one payload; returns its sequence number once it is on disk (then ack it)."""
        return self.append_many([(kind, body)])[-1]

    def append_many(self, entries: Iterable[tuple[str, bytes]]) -> list[int]:
        """Journal several payloads in one transaction (one disk sync); their sequence numbers, in order.

        Group commit: appends from other threads that arrive while a commit is in progress wait
        and then go to disk together, in one transaction and one sync, led by one of them; each
        call still returns only once its own entries are committed (or raises, and then none of
        the group's entries are on disk: it was one transaction).
        """
        rows = [(str(kind), bytes(body)) for kind, body in entries]
        if not rows:
            return []
        batch = _Batch(rows)
        with self._group:
            self._pending.append(batch)
            while self._leading and not batch.done:
                self._group.wait()
            if not batch.done:
                # No commit in progress: this thread leads, for every batch waiting now.
                self._leading = True
                group, self._pending = self._pending, []
        if not batch.done:
            try:
                self._commit_group(group)
            finally:
                with self._group:
                    self._leading = False
                    for member in group:
                        member.done = True
                    self._group.notify_all()
        if batch.error is not None:
            raise batch.error
        return batch.seqs

    @property
    def appends_waiting(self) -> int:
        """``append_many`` calls waiting for the next group commit (not those in the one in progress)."""
        with self._group:
            return len(self._pending)

    def _commit_group(self, group: list[_Batch]) -> None:
        """One transaction for the rows of every batch in ``group``; each gets its seqs or the error."""

        def run() -> list[int]:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                seqs = []
                for member in group:
                    for row in member.rows:
                        cursor = conn.execute("INSERT INTO journal (kind, body) VALUES (?, ?)", row)
                        seqs.append(int(cursor.lastrowid or 0))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return seqs

        try:
            with self._write_lock:
                self._check_open()
                seqs: list[int] = self._run(run)
        except BaseException as exc:
            for member in group:
                member.error = exc
            self.group_commits.failed += 1
            return
        at = 0
        for member in group:
            member.seqs = seqs[at : at + len(member.rows)]
            at += len(member.rows)
        self.group_commits.commits += 1
        self.group_commits.batches += len(group)

    def entries_after(self, seq: int) -> Iterator[tuple[int, str, bytes]]:
        """Journal entries with a sequence number above ``seq``, in order: (seq, kind, body).

        Fetched in batches, so appends made while iterating are seen and are not held up.
        """
        last = seq
        while True:
            with self._worker_lock:
                self._check_open()
                rows, more = self._run(lambda after=last: _journal_batch(self._worker, after))
            for s, kind, body in rows:
                yield int(s), str(kind), bytes(body)
            if not more:
                return
            last = int(rows[-1][0])

    def last_seq(self) -> int:
        """The highest sequence number ever handed out (0 for a new file), truncated or not."""
        with self._worker_lock:
            self._check_open()
            conn = self._worker
            row = self._run(
                lambda: conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
            )
        return int(row[0]) if row else 0

    # -- the checkpoint ------------------------------------------------------------------------
    def save_checkpoint(
        self,
        seq: int,
        blob: bytes,
        *,
        parts: Mapping[str, bytes | None] | None = None,
        truncate: bool = True,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Store ``blob`` as the state after entry ``seq`` and drop the entries it covers, atomically.

        ``parts`` updates named pieces kept beside the blob (None deletes one); pieces not named
        stay as they are, so a large state that changes piecemeal is not rewritten whole. ``also``
        writes more in the same transaction (the outcome history, ``history.py``). Either the new
        checkpoint, its parts, ``also``'s writes and the truncation are all on disk, or (after a
        crash) none.
        """
        if seq < 0:
            raise ValueError(f"seq must be >= 0 (0 means before the first entry), got {seq}")
        payload = bytes(blob)
        upserts = [(str(k), bytes(v)) for k, v in (parts or {}).items() if v is not None]
        deletes = [(str(k),) for k, v in (parts or {}).items() if v is None]

        def run() -> None:
            conn = self._worker
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("SELECT seq FROM checkpoint WHERE id = 1").fetchone()
                if current is not None and int(current[0]) > seq:
                    raise ValueError(
                        f"checkpoint at seq {seq} is older than the stored one at seq {current[0]}; "
                        "checkpoints must move forward"
                    )
                conn.execute(
                    "INSERT OR REPLACE INTO checkpoint (id, seq, blob, saved_at) VALUES (1, ?, ?, ?)",
                    (seq, payload, time.time()),
                )
                conn.executemany("INSERT OR REPLACE INTO checkpoint_part (name, blob) VALUES (?, ?)", upserts)
                conn.executemany("DELETE FROM checkpoint_part WHERE name = ?", deletes)
                if also is not None:
                    also(conn)
                if truncate:
                    conn.execute("DELETE FROM journal WHERE seq <= ?", (seq,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        # Both locks: writes from this process take turns here instead of in SQLite's busy handler,
        # which sleeps up to 100 ms per retry and would hold up the receivers' acknowledgements.
        with self._worker_lock, self._write_lock:
            self._check_open()
            self._run(run)

    def load_checkpoint(self) -> tuple[int, bytes] | None:
        """The last checkpoint as (seq, blob), or None when none was saved."""
        with self._worker_lock:
            self._check_open()
            rows = self._fetch("SELECT seq, blob FROM checkpoint WHERE id = 1")
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def checkpoint_parts(self) -> dict[str, bytes]:
        """The named pieces of the last checkpoint (see ``save_checkpoint``)."""
        with self._worker_lock:
            self._check_open()
            rows = self._fetch("SELECT name, blob FROM checkpoint_part")
        return {str(name): bytes(blob) for name, blob in rows}

    def stats(self) -> StoreStats:
        """Sizes, e.g. for a receiver that sheds load when the journal falls far behind."""
        with self._worker_lock:
            self._check_open()
            conn = self._worker

            def run() -> tuple[Any, ...]:
                entries, size = conn.execute(
                    "SELECT count(*), coalesce(sum(length(body)), 0) FROM journal"
                ).fetchone()
                cp = conn.execute(
                    "SELECT seq, length(blob) + (SELECT coalesce(sum(length(blob)), 0) FROM checkpoint_part) "
                    "FROM checkpoint WHERE id = 1"
                ).fetchone()
                last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'journal'").fetchone()
                return entries, size, cp, last

            entries, size, cp, last = self._run(run)
        return StoreStats(
            journal_entries=int(entries),
            journal_bytes=int(size),
            last_seq=int(last[0]) if last else 0,
            checkpoint_seq=int(cp[0]) if cp else None,
            checkpoint_bytes=int(cp[1]) if cp else 0,
        )

    # -- the notifiers' pages ------------------------------------------------------------------
    def _on_writer(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """``fn(connection)`` on the appenders' connection, in its lock (``notifier_pages``' writes)."""
        with self._write_lock:
            self._check_open()
            conn = self._writer
            return self._run(lambda: fn(conn))

    # -- closing -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"state file {self.path}: the store was closed; open a new StateStore")

    def close(self) -> None:
        """Close both connections; later calls raise StateError."""
        with self._worker_lock, self._write_lock:  # the same order as save_checkpoint
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            self._worker.close()
            self._unlock_instance()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _journal_batch(conn: sqlite3.Connection, after: int) -> tuple[list[Any], bool]:
    """Up to ``_BATCH`` journal entries after ``after`` and ``_BATCH_BYTES`` of payload (at least one
    entry); and whether there may be more. On the worker's connection, under its lock."""
    cursor = conn.execute(
        "SELECT seq, kind, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (after, _BATCH)
    )
    rows: list[Any] = []
    size = 0
    try:
        for row in cursor:
            rows.append(row)
            size += len(row[2])
            if size >= _BATCH_BYTES:
                return rows, True
    finally:
        cursor.close()
    return rows, len(rows) == _BATCH
