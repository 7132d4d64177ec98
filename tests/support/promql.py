"""Just enough PromQL reading to list an expression's metric names, matcher labels and grouping labels."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\d+(?:\.\d+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*|\S'
)
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
AGGREGATORS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "group",
}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"or", "and", "unless", "offset", "bool"}


@dataclass
class Query:
    metrics: dict[str, set[str]] = field(default_factory=dict)
    """Metric name -> label names used in its matchers."""
    grouping: set[str] = field(default_factory=set)
    """Label names in by / without / on / ignoring / group_left / group_right."""


def substitute(expr: str) -> str:
    """Grafana variables replaced by values PromQL accepts: ranges and offsets by 5m, label values by .*."""
    expr = re.sub(r"\[\$\{?\w+\}?\]", "[5m]", expr)
    expr = re.sub(r"(offset\s+)\$\{?\w+\}?", r"\g<1>5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def read(expr: str) -> Query:
    tokens = [m.group(0) for m in _TOKEN.finditer(substitute(expr))]
    query = Query()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in LABEL_LISTS and following == "(":
            j = tokens.index(")", i)
            query.grouping |= {t for t in tokens[i + 2 : j] if t != ","}
            i = j + 1
            continue
        if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", token) and token not in OPERATORS | LABEL_LISTS:
            if following == "(" or token in AGGREGATORS:
                i += 1
                continue
            labels = query.metrics.setdefault(token, set())
            if following.startswith("{"):
                labels |= set(_MATCHER.findall(following))
        i += 1
    return query


def problems(expr: str, exposition: dict[str, list[tuple[dict[str, str], float]]]) -> list[str]:
    """What in ``expr`` the exposition does not have: metric names, matcher labels, grouping labels."""
    query = read(expr)
    out = []
    if not query.metrics:
        out.append(f"no metric in {expr!r}")
    seen_labels = {"le", "__name__"}
    for name, labels in query.metrics.items():
        if name not in exposition:
            out.append(f"metric {name!r} is not emitted")
            continue
        have = {k for series, _ in exposition[name] for k in series}
        seen_labels |= have
        out += [f"{name} has no label {label!r}" for label in sorted(labels - have)]
    out += [
        f"grouping label {label!r} is on none of the metrics"
        for label in sorted(query.grouping - seen_labels)
    ]
    return out


def promtool_parse(exprs: list[str], tmp: Path) -> str | None:
    """None when promtool accepts every expression (as recording rules) or is missing, else its complaint."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return None
    rules = {
        "groups": [
            {
                "name": "check",
                "rules": [{"record": f"check:expr{i}", "expr": substitute(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp / "exprs.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    return None if result.returncode == 0 else result.stdout + result.stderr
