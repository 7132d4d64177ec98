"""Recorded outcome streams: the outcome JSONL form (design.md) and CSV with the same columns."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from driftwatch._outcome import Outcome, OutcomeError, parse_outcome

__all__ = ["ReadReport", "read_outcomes"]


@dataclass
class ReadReport:
    """What reading a file found: outcomes read, and each bad line with its reason."""

    read: int = 0
    errors: list[str] = field(default_factory=list)


def _csv_record(row: dict[str, str | None]) -> dict[str, object]:
    record: dict[str, object] = {}
    labels: dict[str, str] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue
        if key.startswith("labels."):
            labels[key[7:]] = value
        else:
            record[key] = value
    if labels:
        record["labels"] = labels
    return record


def read_outcomes(
    path: str, report: ReadReport, *, default_service: str = "unknown_service", keep_unknown: bool = False
) -> Iterator[Outcome]:
    """Outcomes from ``path`` (``.csv`` by extension, JSONL otherwise), in file order.

    A bad line is recorded in ``report.errors`` as ``path:line: what is wrong`` and skipped; the
    rest keeps flowing.
    """
    is_csv = path.lower().endswith(".csv")
    with open(path, encoding="utf-8", newline="" if is_csv else None) as fh:
        if is_csv:
            reader = csv.DictReader(fh)
            for row in reader:
                where = f"{path}:{reader.line_num}"
                try:
                    yield parse_outcome(
                        _csv_record(row),
                        where=where,
                        default_service=default_service,
                        keep_unknown_as_labels=keep_unknown,
                    )
                    report.read += 1
                except OutcomeError as exc:
                    report.errors.append(str(exc))
            return
        for number, line in enumerate(io.TextIOWrapper(fh.buffer, encoding="utf-8", errors="replace"), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                report.errors.append(
                    f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); expected one "
                    "outcome object per line such as "
                    '{"time": "2026-01-31T12:00:00Z", "task": "fix-tests", "success": true}'
                )
                continue
            try:
                yield parse_outcome(
                    record, where=where, default_service=default_service, keep_unknown_as_labels=keep_unknown
                )
                report.read += 1
            except OutcomeError as exc:
                report.errors.append(str(exc))
