"""Durable state: the SQLite journal and checkpoint, monitor snapshots, restore after kill -9, merge."""

from __future__ import annotations

import dataclasses
import doctest
import json
import logging
import math
import os
import pickle
import random
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from driftwatch import Alert, Config, InMemorySink, JsonlSink, Monitor, Outcome
from driftwatch._monitor import SNAPSHOT_FORMAT
from driftwatch._serve.durable import Durable, checkpointed_snapshot
from driftwatch._serve.store import StateError, StateStore

CONFIG = Config(signals=["success", "latency_s"])
N = 1500  # outcomes per stream


def outcomes(seed: int = 3) -> list[Outcome]:
    """Four streams: two pass rates falling together, a model change, a latency rise; in event time."""
    rng = random.Random(seed)
    out = []
    for i in range(N):
        t = float(i)
        for task in ("a", "b"):
            rate = 0.8 if i < 800 else 0.5
            out.append(Outcome(task=task, time=t, success=rng.random() < rate))
        out.append(
            Outcome(
                task="c",
                time=t,
                task_id=f"case-{i % 60}",
                model="m-1" if i < 600 else "m-2",
                success=rng.random() < (0.7 if i < 600 else 0.55),
                latency_s=rng.lognormvariate(math.log(2.0), 0.3),
            )
        )
        latency = 1.0 if i < 900 else 1.4
        out.append(Outcome(task="d", time=t, latency_s=rng.lognormvariate(math.log(latency), 0.4)))
    return out


OUTCOMES = outcomes()


def reference() -> tuple[list[dict[str, Any]], dict[str, Any], set[int]]:
    """Alerts (as Alert JSON) and stats of one uninterrupted run, and the indices right after each alarm."""
    monitor = Monitor(CONFIG, threaded=False)
    alerts: list[dict[str, Any]] = []
    after_alarm = set()
    for i, outcome in enumerate(OUTCOMES):
        raised = monitor.process(outcome)
        alerts += [a.to_dict() for a in raised]
        if any(a.status == "suspected" for a in raised):
            after_alarm.add(i + 1)
    return alerts, monitor.stats.as_dict(), after_alarm


#: SUSPECTED_AT: where a suspected alert awaits confirmation, with the BH bookkeeping open.
REFERENCE, REFERENCE_STATS, SUSPECTED_AT = reference()


def pairs(alerts: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["id"], a["status"]) for a in alerts}


def encode(index: int, outcome: Outcome) -> bytes:
    """A journal payload: the outcome's fields (time as epoch seconds) and its index in OUTCOMES."""
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
    return json.dumps({"index": index, **{k: v for k, v in fields.items() if v is not None}}).encode()


class IndexDecoder:
    """A stateful decoder, as the OTLP one may be: it remembers the last entry and counts per task."""

    def __init__(self) -> None:
        self.last = -1
        self.per_task: dict[str, int] = {}

    def decode(self, kind: str, body: bytes) -> list[Outcome]:
        if kind != "outcome":
            raise ValueError(f"unknown kind {kind!r}")
        record = json.loads(body)
        self.last = record.pop("index")
        outcome = Outcome(**record)
        self.per_task[outcome.task] = self.per_task.get(outcome.task, 0) + 1
        return [outcome]


def test_doctests() -> None:
    """The StateStore and Durable docstring examples run."""
    from driftwatch._serve import durable, store

    for module in (store, durable):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


# -- the monitor's snapshot ------------------------------------------------------------------------
def test_reference_run_has_the_alerts_the_tests_rely_on() -> None:
    """The uninterrupted run has drift on a, b and d, BH among concurrent candidates, a version comparison."""
    kinds = {(a["stream"]["task"], a["kind"], a["status"]) for a in REFERENCE}
    assert {("a", "drift", "confirmed"), ("b", "drift", "confirmed"), ("d", "drift", "confirmed")} <= kinds
    assert ("c", "version_change", "annotation") in kinds
    assert any(a["kind"] == "version_comparison" for a in REFERENCE)
    assert max(a.get("extra", {}).get("bh_m", 1) for a in REFERENCE) >= 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restored_monitor_alerts_like_an_uninterrupted_one(seed: int) -> None:
    """Snapshot at random points and after each alarm, restore into a new monitor: the same alerts."""
    rng = random.Random(seed)
    points = set(rng.sample(range(len(OUTCOMES)), 8)) | SUSPECTED_AT
    monitor = Monitor(CONFIG, threaded=False)
    alerts: list[dict[str, Any]] = []
    for i, outcome in enumerate(OUTCOMES):
        if i in points:
            blob = monitor.snapshot()
            del monitor
            monitor = Monitor(CONFIG, threaded=False)
            monitor.restore(blob)
        alerts += [a.to_dict() for a in monitor.process(outcome)]
    assert alerts == REFERENCE
    assert monitor.stats.as_dict() == REFERENCE_STATS


def test_restore_refuses_other_settings_and_names_them() -> None:
    """A snapshot restores only under the same detection settings; the message names each difference."""
    monitor = Monitor(CONFIG, threaded=False)
    for outcome in OUTCOMES[:100]:
        monitor.process(outcome)
    other = Monitor(Config(signals=["success", "latency_s"], budget=1e-3, lag=200), threaded=False)
    with pytest.raises(
        StateError, match=r"budget 0.0001 in the snapshot, 0.001 now; lag 300 in the snapshot"
    ):
        other.restore(monitor.snapshot())
    assert other.stream_count == 0


def test_a_snapshot_restores_under_added_signals_which_start_fresh(caplog: pytest.LogCaptureFixture) -> None:
    """More signals than the snapshot's: it restores, its detectors go on alerting exactly as before,
    and a new signal gets its detector at its first observation (logged); fewer signals refuse."""
    half = len(OUTCOMES) // 2
    monitor = Monitor(CONFIG, threaded=False)
    alerts = [a.to_dict() for o in OUTCOMES[:half] for a in monitor.process(o)]
    wider = Config(signals=["turns", *CONFIG.signals, "reads_per_edit"])
    restored = Monitor(wider, threaded=False)
    with caplog.at_level(logging.INFO, logger="driftwatch"):
        restored.restore(monitor.snapshot())
    assert "signals new since it start fresh: ['turns', 'reads_per_edit']" in caplog.text
    alerts += [a.to_dict() for o in OUTCOMES[half:] for a in restored.process(o)]
    assert alerts == REFERENCE
    restored.process(Outcome(task="a", time=float(N), success=True, turns=3))
    (key,) = [k for k in restored.stream_keys() if k.endswith("task=a")]
    _, states = restored.signal_states([key])[key]
    assert sorted(state.signal for state in states) == ["success", "turns"]
    with pytest.raises(
        StateError,
        match=r"signals \['turns', 'reads_per_edit'\] watched in the snapshot are not in signals now",
    ):
        Monitor(CONFIG, threaded=False).restore(restored.snapshot())
    Monitor(Config(signals=["reads_per_edit", "success", "latency_s", "turns"]), threaded=False).restore(
        restored.snapshot()
    )  # the order of the list does not matter


def test_restore_refuses_a_subset_a_newer_format_and_foreign_classes() -> None:
    """restore() wants a full snapshot of a known format, and reads only driftwatch's own classes."""
    monitor = Monitor(CONFIG, threaded=False)
    for outcome in OUTCOMES[:40]:
        monitor.process(outcome)
    with pytest.raises(StateError, match=r"subset of streams; merge\(\) it"):
        Monitor(CONFIG, threaded=False).restore(monitor.snapshot(keys=monitor.stream_keys()[:1]))
    newer = pickle.loads(monitor.snapshot())
    newer["format"] = 99
    with pytest.raises(StateError, match=f"format 99, this driftwatch reads format {SNAPSHOT_FORMAT}"):
        Monitor(CONFIG, threaded=False).restore(pickle.dumps(newer))
    with pytest.raises(
        StateError, match=r"refers to decimal.Decimal, which is not part of driftwatch's state"
    ):
        Monitor(CONFIG, threaded=False).restore(pickle.dumps({"format": 1, "x": Decimal(1)}))
    with pytest.raises(StateError, match="cannot be read"):
        Monitor(CONFIG, threaded=False).restore(b"not a snapshot")


def test_snapshot_of_unchanged_streams_reuses_their_bytes() -> None:
    """A stream untouched since the last snapshot is not pickled again; a touched one is."""
    monitor = Monitor(CONFIG, threaded=False)
    for outcome in OUTCOMES[:400]:
        monitor.process(outcome)
    _, cached = monitor.snapshot_parts()
    monitor.process(OUTCOMES[400])  # stream a
    _, after = monitor.snapshot_parts()
    key_a = next(k for k in cached if k.endswith("task=a"))
    assert after[key_a] is not cached[key_a]
    assert all(after[k] is cached[k] for k in cached if k != key_a)


# -- subsets: scale-out ------------------------------------------------------------------------------
def stream_of(alert: Alert | dict[str, Any]) -> str:
    stream = alert.stream if isinstance(alert, Alert) else alert["stream"]
    return str(stream["task"])


@pytest.mark.parametrize("via", ["snapshot", "state file"])
@pytest.mark.parametrize("cut", [2000, 3405, 3420, 5000])
def test_subset_merged_into_another_monitor_goes_on_alike(cut: int, via: str, tmp_path: Path) -> None:
    """Streams a and b moved mid-run (alarms open or not) to a busy monitor raise the alerts they would."""
    source = Monitor(CONFIG, threaded=False)
    if via == "snapshot":
        for outcome in OUTCOMES[:cut]:
            source.process(outcome)
        blob = source.snapshot(keys=[k for k in source.stream_keys() if k.endswith(("task=a", "task=b"))])
    else:  # a removed instance's state file, as scale-out reads it
        decoder = IndexDecoder()
        durable = Durable(StateStore(tmp_path / "s.db"), source, decoder.decode, decoder=decoder, every=77)
        durable.start()
        durable.append_many([("outcome", encode(i, OUTCOMES[i])) for i in range(cut)])
        durable.step()
        durable.close()
        with StateStore(tmp_path / "s.db") as store:
            full = checkpointed_snapshot(store)
        assert full is not None
        blob = full
    moved = [k for k in source.stream_keys() if k.endswith(("task=a", "task=b"))]
    target = Monitor(CONFIG, threaded=False)
    rng = random.Random(4)
    for i in range(700):  # a healthy stream of its own
        target.process(Outcome(task="e", time=float(i), success=rng.random() < 0.8))
    keys = [*moved, "service=x;task=never-seen"]
    assert sorted(target.merge(blob, keys=keys)) == sorted(moved)
    rest = OUTCOMES[cut:]
    expected = [a.to_dict() for o in rest for a in source.process(o) if stream_of(a) in ("a", "b")]
    got = [a.to_dict() for o in rest if o.task in ("a", "b") for a in target.process(o)]
    assert got == expected
    assert target.stream_count == 3
    assert bool(expected) == (cut < 5000)  # at 3405 and 3420 alarms are open, awaiting confirmation


def test_merge_refuses_streams_already_watched_or_over_the_cap_and_changes_nothing() -> None:
    """merge() is all or nothing: a clash or max_streams is a clear error and leaves the monitor as it was."""
    source = Monitor(CONFIG, threaded=False)
    for outcome in OUTCOMES[:40]:
        source.process(outcome)
    target = Monitor(CONFIG, threaded=False)
    target.merge(source.snapshot(keys=source.stream_keys()[:2]))
    with pytest.raises(StateError, match="2 of its streams are already watched here"):
        target.merge(source.snapshot())
    small = Monitor(Config(signals=["success", "latency_s"], max_streams=3), threaded=False)
    small.process(Outcome(task="e", success=True))
    with pytest.raises(StateError, match=r"exceed max_streams \(3\)"):
        small.merge(source.snapshot())
    assert target.stream_count == 2 and small.stream_count == 1


# -- the store -------------------------------------------------------------------------------------
def test_journal_is_read_in_batches_bounded_by_payload_bytes(tmp_path: Path) -> None:
    """The worker reads at most about 1 MiB of payloads per query (big payloads: fewer rows), all in order."""
    from driftwatch._serve import store as store_module

    body = bytes(300_000)
    with StateStore(tmp_path / "state.db") as store:
        store.append_many([("traces", body)] * 10 + [("logs", b"small")] * 300)
        with store._worker_lock:
            rows, more = store_module._journal_batch(store._worker, 0)
        assert [r[0] for r in rows] == [1, 2, 3, 4] and more  # 1.2 MB with the 4th: it stops there
        with store._worker_lock:
            rows, more = store_module._journal_batch(store._worker, 10)
        assert len(rows) == store_module._BATCH and more  # small payloads: the row limit applies
        assert [seq for seq, _, _ in store.entries_after(0)] == list(range(1, 311))


def test_release_free_memory_returns_freed_heap_pages_after_each_checkpoint(tmp_path: Path) -> None:
    """Freed chunks pinned between live ones go back to the system (glibc); each checkpoint does it."""
    from driftwatch._serve.durable import release_free_memory

    release = release_free_memory()
    if release is None:
        pytest.skip("this C library has no malloc_trim")

    # In a fresh interpreter: after hundreds of tests the heap's layout (and what glibc already gave
    # back) varies, and the measurement with it.
    probe = """
import sys
from pathlib import Path
from driftwatch._serve.durable import release_free_memory

def rss_kib():
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])

big, pins = [], []
# 30 KB chunks (malloc, below the mmap threshold) each followed by a 1 KB one. 60 MB, not 12: the
# first ~12 MB may land in holes that importing driftwatch left free (with 400 chunks the trim freed
# 10.8 MB or 0.6 MB depending on which modules were imported; with 2,000 it frees ~57 MB).
for i in range(2000):
    big.append(bytes(30_000) + bytes([i % 256]))
    pins.append(bytes(1000) + bytes([i % 256]))
del big  # 60 MB free in the middle of the heap: glibc keeps it
before = rss_kib()
release_free_memory()()
print(before - rss_kib(), len(pins))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    freed_kib, pinned = (int(v) for v in result.stdout.split())
    assert freed_kib > 16 * 1024 and pinned == 2000
    durable = Durable(StateStore(tmp_path / "state.db"), Monitor(CONFIG, threaded=False), lambda k, b: [])
    durable.start()
    durable.append("x", b"")
    durable.step()
    durable.checkpoint()
    assert durable.trim.calls == 1 and 0 < durable.trim.max_seconds < 1
    durable.close()


def test_each_checkpoint_records_the_resident_set_right_after_its_trim(tmp_path: Path) -> None:
    """The RSS read just after a checkpoint's trim is kept in the trim stats, fresh at each checkpoint."""
    from driftwatch._serve.durable import release_free_memory, resident_bytes

    if release_free_memory() is None or resident_bytes() is None:
        pytest.skip("no malloc_trim or no /proc here")
    durable = Durable(StateStore(tmp_path / "state.db"), Monitor(CONFIG, threaded=False), lambda k, b: [])
    durable.start()
    assert durable.trim.rss_after_bytes is None  # no checkpoint yet
    durable.append("x", b"")
    durable.step()
    durable.checkpoint()
    first = durable.trim.rss_after_bytes
    assert first is not None and 10 * 2**20 < first < 4 * 2**30  # a Python process's RSS, in bytes
    ballast = bytearray(64 * 2**20)  # touched: resident until freed
    ballast[::4096] = b"x" * len(ballast[::4096])
    durable.append("x", b"")
    durable.step()
    durable.checkpoint()
    second = durable.trim.rss_after_bytes
    assert second is not None and second - first > 48 * 2**20
    del ballast
    durable.close()


def test_journal_appends_in_order_and_checkpoint_truncates(tmp_path: Path) -> None:
    """Sequence numbers rise and are never reused; a checkpoint drops the entries it covers, atomically."""
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        assert store.load_checkpoint() is None and store.last_seq() == 0
        assert store.append("a", b"1") == 1
        assert store.append_many([("b", b"2"), ("c", b"3")]) == [2, 3]
        assert list(store.entries_after(1)) == [(2, "b", b"2"), (3, "c", b"3")]
        store.save_checkpoint(3, b"state")
        assert list(store.entries_after(0)) == []
        assert store.append("d", b"4") == 4  # not 1, although the journal was empty
        with pytest.raises(ValueError, match="older than the stored one at seq 3"):
            store.save_checkpoint(2, b"older")
    with StateStore(path) as store:
        assert store.load_checkpoint() == (3, b"state")
        assert list(store.entries_after(3)) == [(4, "d", b"4")]
        stats = store.stats()
        assert (stats.journal_entries, stats.last_seq, stats.checkpoint_seq) == (1, 4, 3)


def test_file_stays_bounded_across_checkpoints(tmp_path: Path) -> None:
    """Appending and checkpointing for long keeps the file near one checkpoint plus the entries since."""
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        for _ in range(40):
            seqs = store.append_many([("p", os.urandom(1000))] * 100)
            store.save_checkpoint(seqs[-1], os.urandom(20_000))
        written = 40 * (100 * 1000 + 20_000)
        assert store.stats().journal_entries == 0
    total = sum(os.path.getsize(p) for p in tmp_path.iterdir())
    assert total < written / 10, (total, written)


def test_appends_from_many_threads_while_the_worker_reads(tmp_path: Path) -> None:
    """Receiver threads append concurrently with a reader and checkpoints: every seq unique, none lost."""
    store = StateStore(tmp_path / "state.db")
    seqs: list[int] = []
    lock = threading.Lock()

    def receiver(n: int) -> None:
        for i in range(50):
            seq = store.append("p", f"{n}-{i}".encode())
            with lock:
                seqs.append(seq)

    threads = [threading.Thread(target=receiver, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while (any(t.is_alive() for t in threads) or len(seen) < 200) and time.monotonic() < deadline:
        for seq, _, _ in store.entries_after(seen[-1] if seen else 0):
            seen.append(seq)
        if seen:
            store.save_checkpoint(seen[-1], b"x")
    for thread in threads:
        thread.join()
    assert sorted(seqs) == seen == list(range(1, 201))
    store.close()


def test_one_instance_per_state_file(tmp_path: Path) -> None:
    """A second store on the same file is refused while the first is open, and allowed after it closes."""
    path = tmp_path / "state.db"
    first = StateStore(path)
    with pytest.raises(StateError, match="is in use by another process"):
        StateStore(path)
    first.close()
    StateStore(path).close()


# -- clear errors ----------------------------------------------------------------------------------
def test_a_foreign_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A text file or another program's SQLite database is not a state file: refused, never modified."""
    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello, this is not a database\n" * 200)
    with pytest.raises(StateError, match=r"notes.txt: is not a driftwatch state file .*choose another"):
        StateStore(text)
    assert text.read_bytes() == b"hello, this is not a database\n" * 200
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match=r"app.db: is not a driftwatch state file \(a SQLite database with "):
        StateStore(other)


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    """A state file written by a newer driftwatch names both formats and says to upgrade."""
    path = tmp_path / "state.db"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StateError, match=r"newer driftwatch \(state format 7; this version reads up to 1\)"):
        StateStore(path)


def test_a_damaged_file_is_refused_at_start(tmp_path: Path) -> None:
    """Overwritten pages are found when the store opens, with the path and what to do."""
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.append_many([("p", os.urandom(3000)) for _ in range(50)])
    with open(path, "r+b") as fh:
        fh.seek(4096 * 3)
        fh.write(b"\xff" * 8192)
    with pytest.raises(StateError, match=rf"{path}: is damaged .*move the file aside"):
        StateStore(path)


def test_a_read_only_file_is_refused(tmp_path: Path) -> None:
    """A state file this process cannot write is refused up front, naming the path and the fix."""
    path = tmp_path / "state.db"
    StateStore(path).close()
    if os.geteuid() == 0:  # root writes through file modes; an immutable file is read-only even for root
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root and chattr +i is not available")
        try:
            with pytest.raises(StateError, match=rf"{path}: is read-only .*choose another state path"):
                StateStore(path)
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        with pytest.raises(StateError, match=rf"{path}: is read-only .*choose another state path"):
            StateStore(path)


def test_a_damaged_checkpoint_is_refused_on_start(tmp_path: Path) -> None:
    """A checkpoint blob that does not read back stops the start with a clear error, not a traceback."""
    with StateStore(tmp_path / "state.db") as store:
        store.save_checkpoint(0, b"\x80\x05garbage")
        durable = Durable(store, Monitor(CONFIG, threaded=False), IndexDecoder().decode)
        with pytest.raises(StateError, match=r"checkpoint in .*state.db: cannot be read"):
            durable.start()


# -- the durable driver ------------------------------------------------------------------------------
def test_durable_restarts_alert_like_an_uninterrupted_run(tmp_path: Path) -> None:
    """Drop the objects at random points, reopen the file and go on: the same alerts, the same stats."""
    path = tmp_path / "state.db"
    rng = random.Random(11)
    stops = [*sorted(rng.sample(range(1, len(OUTCOMES)), 5)), len(OUTCOMES)]
    sink = InMemorySink()
    start = 0
    for stop in stops:
        decoder = IndexDecoder()
        monitor = Monitor(CONFIG, [sink], threaded=False)
        durable = Durable(
            StateStore(path), monitor, decoder.decode, decoder=decoder, every=rng.randint(50, 500)
        )
        durable.start()
        assert decoder.last == start - 1
        i = start
        while i < stop:  # receivers append batches (one disk sync each); the worker steps now and then
            end = min(stop, i + rng.randint(1, 40))
            durable.append_many([("outcome", encode(j, OUTCOMES[j])) for j in range(i, end)])
            i = end
            if rng.random() < 0.5:
                durable.step()
        durable.step()
        durable.store.close()  # no last checkpoint: the entries since the last one are replayed
        start = stop
    assert pairs([a.to_dict() for a in sink.alerts]) == pairs(REFERENCE)
    assert monitor.stats.as_dict() == {**REFERENCE_STATS, "received": len(OUTCOMES)}
    assert decoder.per_task == {"a": N, "b": N, "c": N, "d": N}
    assert durable.stats.outcomes == len(OUTCOMES)


def test_a_bad_entry_is_skipped_counted_and_the_rest_flows(tmp_path: Path, caplog: Any) -> None:
    """A journal entry the decoder rejects is logged with its seq, counted, and processing goes on."""
    decoder = IndexDecoder()
    durable = Durable(StateStore(tmp_path / "s.db"), Monitor(CONFIG, threaded=False), decoder.decode)
    durable.start()
    durable.append("outcome", encode(0, OUTCOMES[0]))
    bad = durable.append("metrics", b"\x00")
    durable.append("outcome", encode(1, OUTCOMES[1]))
    assert durable.step() == 3
    assert durable.stats.decode_errors == 1 and durable.monitor.stats.processed == 2
    assert f"journal entry {bad} (metrics, 1 bytes) cannot be decoded" in caplog.text
    durable.close()


def part_rowids(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {name: rowid for name, rowid in conn.execute("SELECT name, rowid FROM checkpoint_part")}
    finally:
        conn.close()


def test_a_checkpoint_rewrites_only_the_streams_that_changed(tmp_path: Path) -> None:
    """After one more outcome on stream a, the next checkpoint rewrites a's row and leaves the others."""
    path = tmp_path / "s.db"
    decoder = IndexDecoder()
    durable = Durable(StateStore(path), Monitor(CONFIG, threaded=False), decoder.decode, decoder=decoder)
    durable.start()
    durable.append_many([("outcome", encode(i, OUTCOMES[i])) for i in range(400)])
    durable.step()
    durable.checkpoint()
    before = part_rowids(path)
    assert OUTCOMES[400].task == "a"
    durable.append("outcome", encode(400, OUTCOMES[400]))
    durable.step()
    durable.checkpoint()
    after = part_rowids(path)
    assert sorted(before) == sorted(after) and len(after) == 4
    assert [name for name in after if after[name] != before[name]] == [
        "stream:service=unknown_service;task=a"
    ]
    durable.close()


def test_checkpoints_every_n_entries_and_every_t_seconds(tmp_path: Path) -> None:
    """A checkpoint follows ``every`` entries, or the first entry after ``seconds`` have passed."""
    now = [0.0]
    decoder = IndexDecoder()
    store = StateStore(tmp_path / "s.db")
    durable = Durable(
        store, Monitor(CONFIG, threaded=False), decoder.decode, every=10, seconds=5.0, clock=lambda: now[0]
    )
    durable.start()
    durable.append_many([("outcome", encode(i, OUTCOMES[i])) for i in range(25)])
    durable.step()
    assert store.load_checkpoint() is not None and store.load_checkpoint()[0] == 20  # type: ignore[index]
    assert [seq for seq, _, _ in store.entries_after(0)] == list(range(21, 26))
    durable.append("outcome", encode(25, OUTCOMES[25]))
    durable.step()
    assert store.load_checkpoint()[0] == 20  # type: ignore[index]
    now[0] = 5.0
    assert durable.step() == 0 and store.load_checkpoint()[0] == 26  # type: ignore[index]
    assert durable.stats.checkpoints == 3
    durable.close()


def test_run_processes_until_stopped_and_checkpoints_on_the_way_out(tmp_path: Path) -> None:
    """The worker loop picks up appends from other threads and leaves a checkpoint covering all of them."""
    decoder = IndexDecoder()
    store = StateStore(tmp_path / "s.db")
    durable = Durable(store, Monitor(CONFIG, threaded=False), decoder.decode, decoder=decoder, every=10**6)
    durable.start()
    stop = threading.Event()
    worker = threading.Thread(target=durable.run, args=(stop, 0.005))
    worker.start()
    for i in range(200):
        durable.append("outcome", encode(i, OUTCOMES[i]))
    deadline = time.monotonic() + 10
    while durable.processed_seq < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert durable.backlog() == 0
    stop.set()
    worker.join(10)
    assert durable.monitor.stats.processed == 200
    assert store.load_checkpoint()[0] == 200  # type: ignore[index]
    durable.close()


def test_an_unpicklable_decoder_is_refused_up_front(tmp_path: Path) -> None:
    """A decoder holding a lock could never be checkpointed: refused when the driver is made, not later."""

    class Locked(IndexDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.lock = threading.Lock()

    with StateStore(tmp_path / "s.db") as store, pytest.raises(TypeError, match="Locked does not"):
        Durable(store, Monitor(CONFIG, threaded=False), Locked().decode, decoder=Locked())


def test_restart_refuses_another_decoder_and_missing_streams(tmp_path: Path) -> None:
    """A checkpoint restores only with the decoder class it was saved with, and only when whole."""
    path = tmp_path / "s.db"
    decoder = IndexDecoder()
    durable = Durable(StateStore(path), Monitor(CONFIG, threaded=False), decoder.decode, decoder=decoder)
    durable.start()
    durable.append_many([("outcome", encode(i, OUTCOMES[i])) for i in range(40)])
    durable.step()
    durable.close()
    with StateStore(path) as store:
        plain = Durable(store, Monitor(CONFIG, threaded=False), decoder.decode)
        with pytest.raises(
            StateError, match=r"saved with decoder [\w.]*test_state.IndexDecoder, started with None;"
        ):
            plain.start()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM checkpoint_part WHERE name LIKE '%task=c'")
    conn.commit()
    conn.close()
    with StateStore(path) as store:
        again = Durable(store, Monitor(CONFIG, threaded=False), decoder.decode, decoder=IndexDecoder())
        with pytest.raises(
            StateError, match=r"1 of its 4 streams are missing \(e.g. service=unknown_service;task=c\)"
        ):
            again.start()


def _child(path: Path, alerts_path: Path, stats_path: Path, report: int) -> None:
    """The service's worker in a forked process: append (durable), report the seq, process, checkpoint."""
    decoder = IndexDecoder()
    monitor = Monitor(CONFIG, [JsonlSink(alerts_path)], threaded=False)
    durable = Durable(StateStore(path), monitor, decoder.decode, decoder=decoder, every=60)
    durable.start()
    i = decoder.last + 1
    rng = random.Random(os.getpid())
    while i < len(OUTCOMES):
        batch = [
            ("outcome", encode(j, OUTCOMES[j])) for j in range(i, min(i + rng.randint(1, 10), len(OUTCOMES)))
        ]
        seqs = durable.append_many(batch)
        os.write(report, ("\n".join(map(str, seqs)) + "\n").encode())  # acknowledged: on disk
        i += len(batch)
        durable.step()
    durable.close()
    stats_path.write_text(json.dumps(monitor.stats.as_dict()))


def run_child(path: Path, alerts_path: Path, stats_path: Path, kill_at: int | None) -> list[int]:
    """Fork a worker; SIGKILL it once it has reported ``kill_at`` more seqs (None: let it finish).

    Killing at a point of progress (plus a random few milliseconds), not after a fixed time, keeps
    the kills inside the run on a fast disk and a slow one alike. Returns the seqs it reported.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            _child(path, alerts_path, stats_path, write)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    data = b""
    deadline = time.monotonic() + 60  # a worker that hangs fails the test instead of hanging the suite
    with os.fdopen(read, "rb", buffering=0) as fh:
        while kill_at is None or data.count(b"\n") < kill_at:
            ready, _, _ = select.select([fh], [], [], max(0.0, deadline - time.monotonic()))
            chunk = fh.read(65536) if ready else b""
            if not chunk:
                break  # the worker finished (EOF), or the deadline passed
            data += chunk
        if kill_at is not None or time.monotonic() >= deadline:
            time.sleep(random.uniform(0, 0.01))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        data += fh.read()
    if kill_at is None:
        assert os.waitstatus_to_exitcode(status) == 0, "the worker failed or hung (traceback above)"
    return [int(line) for line in data.split()]


def alerts_in(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # the last line of a killed run may be cut short
            continue
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_loses_no_acknowledged_entry_and_changes_no_alert(tmp_path: Path) -> None:
    """SIGKILL a journaling worker at random moments: no reported seq is lost; alerts as if uninterrupted."""
    path, alerts_path, stats_path = tmp_path / "state.db", tmp_path / "alerts.jsonl", tmp_path / "stats.json"
    rng = random.Random(5)
    killed_with_progress = 0
    for _ in range(5):
        reported = run_child(path, alerts_path, stats_path, kill_at=rng.randint(50, 600))
        assert not stats_path.exists(), "the worker finished before it was killed; give it more work"
        with StateStore(path) as store:
            saved = store.load_checkpoint()
            covered = saved[0] if saved else 0
            journal = {seq for seq, _, _ in store.entries_after(0)}
        lost = [seq for seq in reported if seq > covered and seq not in journal]
        assert lost == []
        killed_with_progress += bool(reported)
    assert killed_with_progress >= 3
    run_child(path, alerts_path, stats_path, kill_at=None)
    assert pairs(alerts_in(alerts_path)) == pairs(REFERENCE)
    assert json.loads(stats_path.read_text()) == {**REFERENCE_STATS, "received": len(OUTCOMES)}


def test_appends_waiting_for_a_commit_share_the_next_one(tmp_path: Path) -> None:
    """Appends queued behind a commit in progress go to disk in one transaction, each with its own seqs."""
    store = StateStore(tmp_path / "state.db")
    results: dict[int, list[int]] = {}

    def receiver(n: int) -> None:
        results[n] = store.append_many([("p", f"{n}-{i}".encode()) for i in range(n % 3 + 1)])

    threads = [threading.Thread(target=receiver, args=(n,)) for n in range(8)]
    # Another writer holds the file's write lock: the first commit waits for it (busy_timeout).
    outside = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while store.appends_waiting < 7 and time.monotonic() < deadline:  # one leads, blocked on the lock
            time.sleep(0.001)
        assert store.appends_waiting == 7
    finally:
        outside.execute("ROLLBACK")
        outside.close()
    for thread in threads:
        thread.join()
    assert store.group_commits.commits == 2 and store.group_commits.batches == 8
    rows = {seq: body for seq, _, body in store.entries_after(0)}
    assert sorted(s for seqs in results.values() for s in seqs) == sorted(rows) == list(range(1, 16))
    for n, seqs in results.items():
        assert [rows[s] for s in seqs] == [f"{n}-{i}".encode() for i in range(n % 3 + 1)]
    store.close()


def _appending_child(path: Path, report: int) -> None:
    """8 receiver threads appending at once; each reports ``seq body`` after its append returned."""
    store = StateStore(path)
    lock = threading.Lock()

    def receiver(n: int) -> None:
        for i in range(100_000):
            body = f"{os.getpid()}-{n}-{i}"
            seq = store.append("p", body.encode())
            with lock:
                os.write(report, f"{seq} {body}\n".encode())

    threads = [threading.Thread(target=receiver, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_loses_no_append_that_returned_from_8_threads(tmp_path: Path) -> None:
    """SIGKILL while 8 threads append (group commit): every returned seq is on disk with its body, once."""
    path = tmp_path / "state.db"
    rng = random.Random(8)
    reported: dict[int, bytes] = {}
    for _ in range(3):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(read)
                _appending_child(path, write)
            finally:
                os._exit(1)
        os.close(write)
        data, want = b"", rng.randint(200, 800)
        deadline = time.monotonic() + 30
        with os.fdopen(read, "rb", buffering=0) as fh:
            while data.count(b"\n") < want and time.monotonic() < deadline:
                ready, _, _ = select.select([fh], [], [], 1.0)
                data += fh.read(65536) if ready else b""
            time.sleep(random.uniform(0, 0.005))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            data += fh.read()
        lines = [line.split() for line in data.splitlines() if line.count(b" ") == 1]
        assert len(lines) >= want
        for seq, body in lines:
            assert int(seq) not in reported, "a seq was handed out twice"
            reported[int(seq)] = body
        with StateStore(path) as store:
            journal = {seq: body for seq, _, body in store.entries_after(0)}
        assert {seq: journal.get(seq) for seq in reported} == reported


def test_a_format_3_snapshot_restores_and_its_open_page_resolves() -> None:
    """A format-3 monitor snapshot (before episode numbers) restores its open page, which later resolves."""
    fixture = (
        Path(__file__).resolve().parents[2] / "fixtures" / "monitor-format-3.snapshot"
    )  # by monitor-format-3.py
    sink = InMemorySink()
    # Taken with the default signals of then: today's default adds the agent ones, which start fresh.
    saved = pickle.loads(fixture.read_bytes())["settings"]["signals"]
    assert set(saved) < set(Config().signals) and "turns" not in saved
    monitor = Monitor(Config(service="s"), [sink])
    monitor.restore(fixture.read_bytes())
    (page,) = monitor.open_alerts()
    assert (page.status, page.signal, page.id) == ("confirmed", "success", "c775605065c9ee93abe2")
    rng = random.Random(4)
    t = 1.7e9 + 3000 * 60
    for i in range(3000):
        t += 60
        monitor.process(
            Outcome(task="fix", time=t, service="s", success=rng.random() < (0.5 if i < 500 else 0.8))
        )
    assert ("resolved", page.id) in [(a.status, a.id) for a in sink.alerts]


ARENA_PROBE = """
import ctypes, sys, tempfile, threading
from pathlib import Path
from driftwatch._serve import durable

limited = durable.limit_malloc_arenas() if sys.argv[1] == "limit" else False
def work():  # 2 KB objects: malloc'd in the allocating thread's arena
    kept.append([bytes(2000) + bytes([i % 256]) for i in range(2000)])
kept = []
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
out = tempfile.mktemp()
report = libc.fopen(out.encode(), b"w")
libc.malloc_info(0, report)
libc.fclose(report)
print(limited, durable.arena_limit, Path(out).read_text().count("<heap nr="))
"""


def arena_probe(mode: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    result = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_limit_malloc_arenas_keeps_every_thread_on_one_arena_unless_the_operator_chose() -> None:
    """With the cap, six allocating threads share glibc's one arena; without it they spread; an operator's
    MALLOC_ARENA_MAX wins over the cap."""
    from driftwatch._serve.durable import release_free_memory

    if release_free_memory() is None:
        pytest.skip("not glibc")
    assert arena_probe("limit") == ["True", "1", "1"]
    limited, recorded, heaps = arena_probe("default")
    assert (limited, recorded) == ("False", "None") and int(heaps) > 1
    assert arena_probe("limit", MALLOC_ARENA_MAX="4")[:2] == ["False", "None"]
