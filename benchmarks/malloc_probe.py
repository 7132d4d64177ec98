"""``driftwatch serve`` in this process, with the C heap sampled: where RSS goes that Python cannot see.

Every ``MALLOC_PROBE_EVERY`` seconds (default 5) it appends one JSON line to ``MALLOC_PROBE_OUT``: RSS,
glibc's ``mallinfo2()`` (``arena``: bytes malloc holds outside mmapped chunks, ``inuse``, ``free``:
free chunks it keeps, ``mmap``), SQLite's own ``sqlite3_memory_used()`` and its high-water mark since
the previous line, and ``sys.getallocatedblocks()``. ``benchmarks/soak.py --malloc-stats PATH`` runs
the service through it; this is how the soak's two RSS levels 8 MiB apart were found to be free
chunks kept by glibc (docs/performance.md, "Soak"). Linux with glibc only.

``MALLOC_PROBE_MAPS_EVERY=N`` adds ``/proc/self/smaps`` (every mapping's size, RSS and anonymous
KiB) to every Nth line. ``MALLOC_PROBE_SNAPSHOTS=T1,T2`` runs tracemalloc (6 frames) and writes what
grew between the snapshots at T1 and T2 seconds, by line and by traceback, to
``$MALLOC_PROBE_OUT.tracemalloc.txt``.

Run: MALLOC_PROBE_OUT=malloc.jsonl .venv/bin/python -P benchmarks/malloc_probe.py serve [serve options]
"""

from __future__ import annotations

import _sqlite3
import ctypes
import json
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


def pymalloc_arenas() -> int:
    """Python's object allocator's arenas (1 MiB each, mmapped): what ``getallocatedblocks`` does not show.

    ``sys._debugmallocstats`` prints to C's stderr: fd 2 is pointed at a file for the call."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found = re.search(r"# arenas allocated current\s+=\s+([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else -1


def smaps() -> list[dict[str, object]]:
    """Every mapping of this process: address, size, RSS (KiB), and what backs it."""
    maps: list[dict[str, object]] = []
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                maps.append({"at": head[0], "name": head[5] if len(head) > 5 else "", "perm": head[1]})
            elif head[0] in ("Size:", "Rss:", "Anonymous:"):
                maps[-1][head[0][:-1].lower()] = int(head[1])
    return maps


def compare_snapshots(path: str, at: list[float], started: float) -> None:
    """tracemalloc snapshots at ``at`` seconds; what grew between the first and the last, by line."""
    taken: list[tuple[float, tracemalloc.Snapshot]] = []
    for when in at:
        time.sleep(max(0.0, started + when - time.monotonic()))
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        taken.append((time.monotonic() - started, snapshot))
    (t0, first), (t1, last) = taken[0], taken[-1]
    with open(path, "w") as out:
        out.write(f"tracemalloc: {t0:.0f} s -> {t1:.0f} s; traced {tracemalloc.get_traced_memory()}\n")
        for key in ("lineno", "traceback"):
            out.write(f"\n-- grown most, by {key} --\n")
            for stat in last.compare_to(first, key)[:25]:
                out.write(
                    f"{stat.size_diff / 1024:+10.1f} KiB {stat.count_diff:+7d} blocks, "
                    f"now {stat.size / 1024:10.1f} KiB\n"
                )
                frames = stat.traceback.format() if key == "traceback" else stat.traceback.format()[:1]
                out.write("".join(f"      {line}\n" for line in frames))


def sampler(path: str, every: float) -> None:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL(_sqlite3.__file__)  # resolves the SQLite library the module links
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    sqlite.sqlite3_status64.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_int,
    ]
    current, high = ctypes.c_int64(), ctypes.c_int64()

    def sqlite_status(op: int) -> int:
        sqlite.sqlite3_status64(op, ctypes.byref(current), ctypes.byref(high), 0)
        return current.value

    maps_every = int(os.environ.get("MALLOC_PROBE_MAPS_EVERY", "0"))  # samples between mapping dumps
    taken = 0
    started = time.monotonic()
    with open(path, "w") as out:
        while True:
            time.sleep(every)
            info = libc.mallinfo2()
            with open("/proc/self/statm", "rb") as statm:
                rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            sample = {
                "t": round(time.monotonic() - started, 1),
                "rss": rss,
                "arena": info.arena,
                "inuse": info.uordblks,
                "free": info.fordblks,
                "mmap": info.hblkhd,
                "sqlite": sqlite.sqlite3_memory_used(),
                "sqlite_highwater": sqlite.sqlite3_memory_highwater(1),
                "python_blocks": sys.getallocatedblocks(),
                # SQLITE_STATUS_PAGECACHE_OVERFLOW (2): page cache bytes from malloc (no pre-set buffer)
                "sqlite_pagecache": sqlite_status(2),
                "sqlite_malloc_count": sqlite_status(9),  # SQLITE_STATUS_MALLOC_COUNT: live allocations
                "pymalloc_arenas": pymalloc_arenas(),
                "threads": threading.active_count(),
                "os_threads": len(os.listdir("/proc/self/task")),
            }
            if maps_every and taken % maps_every == 0:
                sample["maps"] = smaps()
            taken += 1
            out.write(json.dumps(sample) + "\n")
            out.flush()


def main() -> int:
    at = [float(x) for x in os.environ.get("MALLOC_PROBE_SNAPSHOTS", "").split(",") if x]
    if at:  # tracemalloc with 6 frames from the start (slows the service), snapshots compared
        tracemalloc.start(6)
        threading.Thread(
            target=compare_snapshots,
            args=(os.environ["MALLOC_PROBE_OUT"] + ".tracemalloc.txt", at, time.monotonic()),
            name="malloc-probe-snapshots",
            daemon=True,
        ).start()
    threading.Thread(
        target=sampler,
        args=(os.environ["MALLOC_PROBE_OUT"], float(os.environ.get("MALLOC_PROBE_EVERY", "5"))),
        name="malloc-probe",
        daemon=True,
    ).start()
    from driftwatch._cli.main import main as driftwatch

    sys.argv = ["driftwatch", *sys.argv[1:]]
    return int(driftwatch() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
