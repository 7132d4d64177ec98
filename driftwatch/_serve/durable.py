"""Journal-first processing for ``driftwatch serve``: restore, replay, process in order, checkpoint.

The receiver threads ``append`` each accepted payload to the journal and answer 2xx only after it
returns. One worker (``run`` or ``step``) decodes journal entries in sequence order into outcomes,
feeds them to the monitor and, every ``every`` entries or ``seconds`` seconds, checkpoints the
monitor (and the decoder's state) together with the sequence number they cover. On start the
last checkpoint is restored and the entries after it are replayed, so after a ``kill -9`` the
monitor ends up exactly where an uninterrupted run would be.

Replay re-sends the alerts raised after the last checkpoint: they carry the same ids and
statuses as the first time (ids depend only on the stream, signal, direction and change time),
so sinks, which must be idempotent on the alert id, see duplicates, never different alerts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftwatch._errors import StateError
from driftwatch._monitor import Monitor
from driftwatch._monitor.moved import moved
from driftwatch._monitor.snapshot import dumps, loads
from driftwatch._outcome import Outcome
from driftwatch._serve.history import History
from driftwatch._serve.store import StateStore

__all__ = [
    "Decode",
    "Durable",
    "DurableStats",
    "TrimStats",
    "checkpointed_snapshot",
    "limit_malloc_arenas",
    "release_free_memory",
]

log = logging.getLogger("driftwatch")

#: Format of the checkpoint blob (the monitor's own snapshot inside has its own format number).
CHECKPOINT_FORMAT = 1
#: Name prefix of a stream's piece of the checkpoint (``StateStore.save_checkpoint(parts=...)``).
_PART = "stream:"

Decode = Callable[[str, bytes], list[Outcome]]


@dataclass
class DurableStats:
    """What the worker did since the state file was created (restored with the checkpoint)."""

    entries: int = 0
    """Journal entries processed (decoded or skipped)."""
    outcomes: int = 0
    decode_errors: int = 0
    """Entries whose payload could not be decoded: skipped, counted and logged with their seq."""
    checkpoints: int = 0
    replayed: int = 0
    """Entries replayed after the last checkpoint when this process started."""


@dataclass
class TrimStats:
    """``malloc_trim`` after checkpoints in this process (``GET /stats``, ``handler.malloc_trim``)."""

    calls: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    arena_max: int | None = None
    """glibc's malloc arenas as capped by ``limit_malloc_arenas`` in this process (None: not capped
    by driftwatch; ``driftwatch serve`` caps them at 1 unless ``MALLOC_ARENA_MAX`` is set)."""
    rss_after_bytes: int | None = None
    """Resident set right after the latest checkpoint and trim (Linux; None elsewhere): memory at
    one point of the worker's cycle, the history buffer empty and SQLite's transaction over. A
    sample at any other moment also catches the cycle's sawtooth (the worker's glibc arena swung
    3-14 MiB in a soak; docs/performance.md, "Soak")."""


def release_free_memory() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (macOS, musl, Windows).

    Why: what a checkpoint frees (SQLite's transaction memory, the journal batch's payloads, the
    history rows' parameters) stays in glibc's per-thread arenas as free chunks, 3-15 MiB of them
    in a soak, returned to the system only when the top of an arena happens to be free: RSS then
    jumped between two levels about 8 MiB apart (docs/performance.md, "Soak"). Trimming after each
    checkpoint returns those free pages, so RSS follows what is in use."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


#: glibc's ``mallopt`` parameter for the number of malloc arenas (``M_ARENA_MAX`` in malloc.h).
M_ARENA_MAX = -8
#: The arena cap ``limit_malloc_arenas`` set in this process (None: none set), shown in ``/stats``.
arena_limit: int | None = None


def limit_malloc_arenas(limit: int = 1) -> bool:
    """Cap glibc's malloc arenas at ``limit`` in this process; True if set, False if not or left to the user.

    Call it before threads start (an arena, once a thread has one, stays its arena). It does nothing
    when ``MALLOC_ARENA_MAX`` or a ``GLIBC_TUNABLES`` ``arena_max`` is set: the operator's choice wins.

    Why (measured): with glibc's default (8 arenas per core) the service's RSS after each
    checkpoint's trim crept +124.7 KiB/min over a 30-minute soak at 12 requests/s (95% CI +87 to
    +159), the growth in the 15 small arenas of the threads other than the worker (HTTP, gRPC and
    others) touching more of what they had mapped; the same soak with one arena (the main heap,
    which the trim after each checkpoint covers entirely, its top included) gave +6.1 KiB/min
    (95% CI -8.9 to +18.4), 3-17 MiB lower (docs/performance.md, "Soak"). Contention costs little
    here: the threads that allocate most hold the GIL while they do."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(M_ARENA_MAX, limit):
        return False
    global arena_limit
    arena_limit = limit
    return True


def resident_bytes() -> int | None:
    """This process's resident set from ``/proc/self/statm`` (Linux), or None."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Durable:
    """Feeds a monitor from a state store's journal, checkpointing it; survives ``kill -9``.

    ``decode(kind, body)`` turns one journal entry into outcomes; it must be deterministic (the
    same entry gives the same outcomes, with event times from the payload), since replay relies
    on it. A stateful decoder (one that, say, joins a task's calls arriving in separate payloads)
    is passed as ``decoder``: it is pickled into each checkpoint and restored *in place* on
    start, so ``decode`` may be its bound method. The monitor must be fed only through this
    object, or the checkpoints would hold outcomes the journal does not.

    >>> import tempfile, os, json
    >>> from driftwatch import Config, Monitor, Outcome
    >>> store = StateStore(os.path.join(tempfile.mkdtemp(), "state.db"))
    >>> decode = lambda kind, body: [Outcome(task="t", time=0.0, **json.loads(body))]
    >>> durable = Durable(store, Monitor(Config(), threaded=False), decode)
    >>> durable.start()  # restores the last checkpoint and replays the journal after it
    0
    >>> seq = durable.append("outcome", b'{"success": true}')  # durable now: acknowledge it
    >>> durable.step(), durable.monitor.stats.processed
    (1, 1)
    >>> durable.close()
    """

    def __init__(
        self,
        store: StateStore,
        monitor: Monitor,
        decode: Decode,
        *,
        decoder: Any = None,
        every: int = 1000,
        seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        history: History | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every: checkpoint after this many journal entries, >= 1; got {every}")
        if not seconds > 0:
            raise ValueError(f"seconds: checkpoint at least this often, > 0; got {seconds}")
        if decoder is not None:
            try:
                dumps(decoder)
            except Exception as exc:
                raise TypeError(
                    f"decoder: its state is saved with each checkpoint, so it must pickle; "
                    f"{type(decoder).__name__} does not ({exc}). Keep locks, sockets and threads out of it"
                ) from None
        self.store = store
        self.monitor = monitor
        self.decode = decode
        self.decoder = decoder
        self.every = every
        self.seconds = seconds
        self.stats = DurableStats()
        self._clock = clock
        #: Keeps each entry's outcomes, written with the checkpoint that covers the entry (``history.py``).
        self.history = history
        self._seq = 0  # the last journal entry processed
        self._since = 0  # entries processed since the last checkpoint
        self._saved: dict[str, bytes] = {}  # each stream's bytes as of the last checkpoint
        self._last_checkpoint = clock()
        self._started = False
        self._work_lock = threading.Lock()
        #: Journal position of the checkpoint restored by ``start`` (None: none, replayed from the start).
        self.restored_seq: int | None = None
        #: After each checkpoint, free memory goes back to the system (glibc; ``release_free_memory``).
        self.trim = TrimStats(arena_max=arena_limit)
        self._release = release_free_memory()

    @property
    def processed_seq(self) -> int:
        """Sequence number of the last journal entry processed (0 before the first)."""
        return self._seq

    def backlog(self) -> int:
        """Journal entries accepted but not yet processed: a receiver can shed load (503) above a limit."""
        return max(0, self.store.last_seq() - self._seq)

    # -- the receiver's side --------------------------------------------------------------------
    def append(self, kind: str, body: bytes) -> int:
        """Journal one payload (thread-safe); it is on disk when this returns: acknowledge it then."""
        return self.store.append(kind, body)

    def append_many(self, entries: list[tuple[str, bytes]]) -> list[int]:
        """Journal several payloads with one disk sync; all are on disk when this returns."""
        return self.store.append_many(entries)

    # -- the worker's side ----------------------------------------------------------------------
    def start(self) -> int:
        """Restore the last checkpoint and replay the journal after it; the number of entries replayed.

        Raises StateError when the checkpoint does not fit (other settings, damaged, newer format).
        """
        with self._work_lock:
            if self._started:
                raise RuntimeError("Durable.start() was already called")
            saved = self.store.load_checkpoint()
            if saved is not None:
                seq, blob = saved
                self._restore(blob)
                self._seq = seq
                self.restored_seq = seq
            self._started = True
            replayed = self._drain(None)
            self.stats.replayed = replayed
            self._last_checkpoint = self._clock()
            return replayed

    def step(self, limit: int | None = None) -> int:
        """Process the journal entries not yet processed (at most ``limit``); checkpoint when due.

        Returns the number of entries processed.
        """
        with self._work_lock:
            if not self._started:
                raise RuntimeError("call Durable.start() first: it restores the checkpoint")
            done = self._drain(limit)
            if self._since and (self._due() or self._clock() - self._last_checkpoint >= self.seconds):
                self._checkpoint()
            return done

    def checkpoint(self) -> None:
        """Checkpoint now (if anything was processed since the last one)."""
        with self._work_lock:
            if self._since:
                self._checkpoint()

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        """The worker loop: ``step`` until ``stop`` is set, then a last checkpoint."""
        while not stop.is_set():
            try:
                if not self.step(limit=self.every):
                    stop.wait(poll)
            except Exception:
                # The journal keeps what was accepted; the worker tries again rather than dying.
                log.error("driftwatch: processing the journal failed; retrying in 1 s", exc_info=True)
                stop.wait(1.0)
        self.checkpoint()

    def close(self) -> None:
        """A last checkpoint, then close the store."""
        if self._started:
            self.checkpoint()
        self.store.close()

    # -- inside ---------------------------------------------------------------------------------
    def _drain(self, limit: int | None) -> int:
        done = 0
        for seq, kind, body in self.store.entries_after(self._seq):
            self._handle(seq, kind, body)
            done += 1
            if limit is not None and done >= limit:
                break
            if self._due():
                self._checkpoint()  # keeps a long replay or backlog from growing the journal unchecked
        return done

    def _due(self) -> bool:
        """A checkpoint is due whatever the time: ``every`` entries, or the history buffer is full."""
        return self._since >= self.every or (self.history is not None and self.history.full)

    def _handle(self, seq: int, kind: str, body: bytes) -> None:
        try:
            outcomes = self.decode(kind, body)
        except Exception as exc:
            self.stats.decode_errors += 1
            log.warning(
                "driftwatch: journal entry %d (%s, %d bytes) cannot be decoded (%s: %s); skipped and counted",
                seq,
                kind,
                len(body),
                type(exc).__name__,
                exc,
            )
            outcomes = []
        if self.history is not None and outcomes:
            self.history.add(seq, outcomes)
        monitor = self.monitor
        for outcome in outcomes:
            monitor.stats.received += 1
            monitor.process(outcome)
        self.stats.entries += 1
        self.stats.outcomes += len(outcomes)
        self._seq = seq
        self._since += 1

    def _checkpoint(self) -> None:
        head, streams = self.monitor.snapshot_parts()
        saved = self._saved
        # Only streams whose bytes changed since the last checkpoint are written (the monitor hands
        # out the same bytes object while a stream is unchanged).
        parts: dict[str, bytes | None] = {
            _PART + key: blob for key, blob in streams.items() if saved.get(key) is not blob
        }
        parts.update({_PART + key: None for key in saved.keys() - streams.keys()})
        blob = dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "monitor": head,
                "streams": list(streams),
                # Bytes of their own: reading the monitor's part back (scale-out) needs no decoder class.
                "decoder": dumps(self.decoder),
                "decoder_class": _class_name(self.decoder),
                "stats": dataclasses.replace(self.stats, checkpoints=self.stats.checkpoints + 1),
            }
        )
        history = self.history
        try:
            self.store.save_checkpoint(
                self._seq, blob, parts=parts, also=None if history is None else history.flush
            )
        except BaseException:
            if history is not None:
                history.rolled_back()
            raise
        if history is not None:
            history.committed()
        self.stats.checkpoints += 1
        self._saved = streams
        self._since = 0
        if self._release is not None:
            started = time.perf_counter()
            self._release()
            took = time.perf_counter() - started
            self.trim.calls += 1
            self.trim.seconds += took
            self.trim.max_seconds = max(self.trim.max_seconds, took)
            self.trim.rss_after_bytes = resident_bytes()
        self._last_checkpoint = self._clock()

    def _restore(self, blob: bytes) -> None:
        # Everything is read and checked before anything is changed: a refused checkpoint leaves
        # the monitor and the decoder as they were.
        modules = [type(self.decoder).__module__] if self.decoder is not None else []
        state = _read_checkpoint(self.store, blob)
        saved_class, current_class = moved(state["decoder_class"]), _class_name(self.decoder)
        if saved_class != current_class:
            raise StateError(
                f"checkpoint in {self.store.path}: saved with decoder {saved_class}, started with "
                f"{current_class}; start with the decoder it was saved with"
            )
        saved = loads(state["decoder"], f"checkpoint in {self.store.path}, decoder", modules)
        self.monitor.restore_state(state["monitor"])
        if saved is not None:
            _restore_into(self.decoder, saved)
        self.stats = state["stats"]
        self._saved = dict(state["monitor"]["streams"])


def checkpointed_snapshot(store: StateStore) -> bytes | None:
    """The monitor snapshot in a state file's last checkpoint (None without one), for ``Monitor.merge``.

    Scale-out: when an instance is removed, another one takes over some of its streams with
    ``monitor.merge(checkpointed_snapshot(StateStore(its_path)), keys=...)``. The removed
    instance's journal entries after its checkpoint are not in the snapshot; replay them
    through the new owner, or route them again.
    """
    saved = store.load_checkpoint()
    if saved is None:
        return None
    state = _read_checkpoint(store, saved[1])
    return dumps(state["monitor"])


def _read_checkpoint(store: StateStore, blob: bytes) -> dict[str, Any]:
    """The checkpoint blob with the monitor snapshot reassembled from its stored streams."""
    what = f"checkpoint in {store.path}"
    state = loads(blob, what)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StateError(
            f"{what}: format {found!r}, this driftwatch reads format {CHECKPOINT_FORMAT}; "
            "run the version that wrote it, or move the state file aside"
        )
    parts = store.checkpoint_parts()
    keys: list[str] = state["streams"]
    missing = [key for key in keys if _PART + key not in parts]
    if missing:
        raise StateError(
            f"{what}: {len(missing)} of its {len(keys)} streams are missing (e.g. {missing[0]}); "
            "the file is damaged — move it aside to start afresh"
        )
    state["monitor"]["streams"] = {key: parts[_PART + key] for key in keys}
    result: dict[str, Any] = state
    return result


def _class_name(obj: Any) -> str | None:
    return None if obj is None else f"{type(obj).__module__}.{type(obj).__qualname__}"


def _restore_into(target: Any, source: Any) -> None:
    """Give ``target`` the state of ``source`` (same class) in place, as ``copy`` would set it."""
    state = source.__getstate__()
    setter = getattr(target, "__setstate__", None)
    if setter is not None:
        setter(state)
        return
    dict_state, slot_state = state if isinstance(state, tuple) else (state, None)
    if dict_state:
        target.__dict__.update(dict_state)
    for name, value in (slot_state or {}).items():
        setattr(target, name, value)
