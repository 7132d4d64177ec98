"""The Grafana dashboard and alerting provisioning import structurally and query only emitted metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus_data import degrading_sink, parse_exposition
from tests.support.promql import problems, promtool_parse, read, substitute

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana" / "driftwatch-dashboard.json"
ALERTING = ROOT / "examples" / "grafana" / "alerting" / "driftwatch.yaml"
RULES = ROOT / "examples" / "prometheus" / "driftwatch-rules.yml"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


@pytest.fixture(scope="module")
def exposition() -> dict[str, list[tuple[dict[str, str], float]]]:
    sink, monitor = degrading_sink()
    assert monitor.stats.alerts.get("confirmed") and monitor.stats.alerts.get("version_change:annotation")
    return parse_exposition(sink.render().decode())


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def alerting_exprs(provisioning: dict[str, Any]) -> list[str]:
    return [
        d["model"]["expr"]
        for g in provisioning["groups"]
        for r in g["rules"]
        for d in r["data"]
        if d["datasourceUid"] != "__expr__"
    ]


def label_values_metric(expr: str) -> str:
    assert expr.startswith("label_values(") and expr.endswith(")"), expr
    return expr[len("label_values(") : -1].rsplit(",", 1)[0]


def test_dashboard_has_a_prometheus_datasource_input_used_everywhere() -> None:
    """`__inputs` declares DS_PROMETHEUS; every datasource reference is `${DS_PROMETHEUS}` (or built-in)."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": dashboard["__inputs"][0]["description"],
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    refs = [value for key, value in walk(dashboard) if key == "datasource"]
    assert refs and all(ref == DS or ref == {"type": "grafana", "uid": "-- Grafana --"} for ref in refs), refs
    assert sum(ref == DS for ref in refs) >= len(dashboard["panels"])
    assert {r["id"] for r in dashboard["__requires"]} >= {
        "grafana",
        "prometheus",
        "timeseries",
        "stat",
        "table",
    }


def test_dashboard_panels_have_unique_ids_and_a_non_overlapping_grid() -> None:
    """Panel ids are unique; gridPos fits 24 columns and no two panels overlap; refIds unique per panel."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs) and all(t["expr"] for t in p["targets"])


def test_dashboard_has_stream_variables_and_version_annotations() -> None:
    """Templating offers service and task (multi, All); annotations mark version changes and change points."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("service", "task"):
        assert (
            variables[name]["type"] == "query" and variables[name]["multi"] and variables[name]["includeAll"]
        )
    assert "window" in variables
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert 'driftwatch_alert_kind="version_change"' in annotations["Version changes"]["expr"]
    assert 'status="confirmed"' in annotations["Change points (confirmed drift)"]["expr"]
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for word in ("pass rate", "latency", "tokens", "cost", "open drift alerts"):
        assert word in titles


def test_dashboard_queries_only_emitted_metrics_and_labels(
    exposition: dict[str, list[tuple[dict[str, str], float]]], tmp_path: Path
) -> None:
    """Every dashboard PromQL expression names metrics and labels a real scrape has; promtool parses it."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [e for e in dashboard_exprs(dashboard) if not e.startswith("label_values(")]
    found = {f"{e!r}: {p}" for e in exprs for p in problems(e, exposition)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found |= {
                f"variable {variable['name']}: {p}"
                for p in problems(label_values_metric(variable["query"]["query"]), exposition)
            }
    assert not found, sorted(found)
    used = {name for e in exprs for name in read(e).metrics}
    assert {
        "driftwatch_drift_active",
        "driftwatch_outcome_results_total",
        "driftwatch_outcome_latency_seconds_bucket",
    } <= used
    assert promtool_parse(exprs, tmp_path) is None


def test_alerting_provisioning_is_well_formed(
    exposition: dict[str, list[tuple[dict[str, str], float]]], tmp_path: Path
) -> None:
    """apiVersion 1 groups with unique rule uids, a condition that names a query, emitted metrics only."""
    provisioning = yaml.safe_load(ALERTING.read_text())
    assert provisioning["apiVersion"] == 1
    uids = []
    for group in provisioning["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
        for rule in group["rules"]:
            uids.append(rule["uid"])
            assert len(rule["uid"]) <= 40 and rule["title"]
            refs = {d["refId"] for d in rule["data"]}
            assert rule["condition"] in refs
            for d in rule["data"]:
                assert d["model"]["refId"] == d["refId"]
                if d["datasourceUid"] == "__expr__":
                    assert d["model"]["expression"] in refs
                else:
                    assert d["datasourceUid"] == "${DRIFTWATCH_PROMETHEUS_UID}"
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["noDataState"] in {"OK", "NoData", "Alerting"} and rule["execErrState"] in {
                "Error",
                "Alerting",
                "OK",
            }
    assert len(set(uids)) == len(uids)
    exprs = alerting_exprs(provisioning)
    assert exprs and not [p for e in exprs for p in problems(e, exposition)]
    assert promtool_parse(exprs, tmp_path) is None


def test_prometheus_rules_query_only_emitted_metrics(
    exposition: dict[str, list[tuple[dict[str, str], float]]],
) -> None:
    """The shipped Prometheus rules name metrics and labels a real scrape has (promtool: make rules)."""
    from driftwatch._alerting.notifiers import WebhookSink, delivery_metrics

    notifier = WebhookSink("http://127.0.0.1:9/hook")  # its delivery counters, as serve's scrape has them
    notifier.shutdown(0.1)
    scrape = {**exposition, **parse_exposition("\n".join(delivery_metrics([notifier])) + "\n")}
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert not [p for e in exprs for p in problems(e, scrape)]


def test_the_expression_reader_catches_unknown_names(
    exposition: dict[str, list[tuple[dict[str, str], float]]], tmp_path: Path
) -> None:
    """A misspelt metric, a wrong label or a wrong grouping label is reported (the checks can fail)."""
    assert problems("rate(driftwatch_outcome_total[5m])", exposition) == [
        "metric 'driftwatch_outcome_total' is not emitted"
    ]
    assert problems('driftwatch_drift_active{stream="x"}', exposition) == [
        "driftwatch_drift_active has no label 'stream'"
    ]
    assert problems("sum by (model) (driftwatch_outcomes_total)", exposition) == [
        "grouping label 'model' is on none of the metrics"
    ]
    if shutil.which("promtool"):
        assert promtool_parse(["sum by (service (driftwatch_outcomes_total)"], tmp_path) is not None


def _alerts_series(task: str, status: str) -> str:
    return (
        f'driftwatch_alerts_total{{service="agent",task="{task}",signal="success",direction="down",'
        f'status="{status}",driftwatch_alert_kind="drift"}}'
    )


def test_alert_count_queries_under_promtool(tmp_path: Path) -> None:
    """The panel "Alerts raised by status and kind" and the change-point annotation, evaluated by
    Prometheus' own engine (promtool test rules) over counter series as driftwatch exposes them: a series
    first seen at 1 inside the window counts (increase() alone gives 0), one started at 0 counts its
    increase, a reset (restart) counts, a count before the window does not; a confirmed count created
    at 0 when the episode opens is no change point until it turns 1."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (make prometheus-tools installs Debian's prometheus package)")
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == "Alerts raised by status and kind")
    annotation = next(
        a for a in dashboard["annotations"]["list"] if a["name"] == "Change points (confirmed drift)"
    )
    (tmp_path / "none.yml").write_text("groups: []\n")
    suite = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # Samples at 0m..10m; the window is 5m, evaluated at 10m.
                    {"series": _alerts_series("fix", "confirmed"), "values": "_ _ _ 0 0 0 1 1 1 1 1"},
                    {"series": _alerts_series("fix", "suspected"), "values": "_ _ _ _ _ _ _ 1 1 1 1"},
                    {"series": _alerts_series("old", "suspected"), "values": "1 1 1 1 1 1 1 1 1 1 1"},
                    {"series": _alerts_series("restart", "suspected"), "values": "2 2 2 2 2 2 2 1 1 1 1"},
                ],
                "promql_expr_test": [
                    {
                        "expr": substitute(panel["targets"][0]["expr"]),
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": '{status="confirmed",driftwatch_alert_kind="drift"}', "value": 1},
                            {"labels": '{status="suspected",driftwatch_alert_kind="drift"}', "value": 2},
                        ],
                    },
                    {"expr": substitute(annotation["expr"]), "eval_time": "4m", "exp_samples": []},
                    {
                        "expr": substitute(annotation["expr"]),
                        "eval_time": "6m",
                        "exp_samples": [
                            {
                                "labels": _alerts_series("fix", "confirmed").removeprefix(
                                    "driftwatch_alerts_total"
                                ),
                                "value": 1,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
