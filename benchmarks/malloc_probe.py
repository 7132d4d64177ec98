"""``driftwatch serve`` in this process, with the C heap sampled: where RSS goes that Python cannot see.

Every ``MALLOC_PROBE_EVERY`` seconds (default 5) it appends one JSON line to ``MALLOC_PROBE_OUT``: RSS,
glibc's ``mallinfo2()`` (``arena``: bytes malloc holds outside mmapped chunks, ``inuse``, ``free``:
free chunks it keeps, ``mmap``), SQLite's own ``sqlite3_memory_used()`` and its high-water mark since
the previous line, and ``sys.getallocatedblocks()``. ``benchmarks/soak.py --malloc-stats PATH`` runs
the service through it; this is how the soak's two RSS levels 8 MiB apart were found to be free
chunks kept by glibc (docs/performance.md, "Soak"). Linux with glibc only.

Run: MALLOC_PROBE_OUT=malloc.jsonl .venv/bin/python -P benchmarks/malloc_probe.py serve [serve options]
"""

from __future__ import annotations

import _sqlite3
import ctypes
import json
import os
import sys
import threading
import time


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


def sampler(path: str, every: float) -> None:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL(_sqlite3.__file__)  # resolves the SQLite library the module links
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
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
            }
            out.write(json.dumps(sample) + "\n")
            out.flush()


def main() -> int:
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
