"""The dashboard's alert queries against a real Prometheus scraping a run with alerts: every alert the
monitor raised is counted in "Alerts raised by status and kind", and the change-point annotation marks
the confirmation, not the moment its count was created at 0."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest

from driftwatch import Config, InMemorySink, Monitor
from driftwatch._alerting.prometheus import MetricsServer, PrometheusSink, serve_metrics
from tests.driftwatch.alerting.test_prometheus_server import free_port, stop
from tests.support.prometheus_data import degrading_outcomes

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana" / "driftwatch-dashboard.json"


def grafana(expr: str, window: str) -> str:
    """The expression as Grafana sends it with every service and task selected."""
    return expr.replace("$window", window).replace("$service", ".*").replace("$task", ".*")


def wait_scrapes(server: MetricsServer, more: int, timeout: float = 20.0) -> None:
    """Until Prometheus scraped ``more`` times from now: the latest state is then in its database."""
    target = server.scrapes + more
    deadline = time.monotonic() + timeout
    while server.scrapes < target:
        assert time.monotonic() < deadline, "Prometheus stopped scraping"
        time.sleep(0.05)


def api(web: str, path: str, **params: Any) -> list[dict[str, Any]]:
    reply = httpx2.get(f"http://{web}/api/v1/{path}", params=params, timeout=10).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def test_alert_queries_count_every_alert_in_a_real_prometheus(tmp_path: Path) -> None:
    """A degrading run (version change, suspected, confirmed, comparison) scraped every second: the
    panel's query gives each (status, alert kind) exactly the number of alerts raised; the confirmed
    change-point annotation starts at the confirmation."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus not installed and could not be (make prometheus-tools)")
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == "Alerts raised by status and kind")
    annotations = {a["name"]: a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a}

    sink, memory = PrometheusSink(), InMemorySink()
    monitor = Monitor(Config(signals=["success"]), [sink, memory], threaded=False)
    server = serve_metrics(sink, "127.0.0.1", 0)
    web = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: driftwatch\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={web}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_scrapes(server, 1, timeout=60)
        raised: list[tuple[str, str, float]] = []  # (status, kind, wall time)
        for outcome in degrading_outcomes():
            seen = len(memory.alerts)
            monitor.process(outcome)
            if len(memory.alerts) > seen:
                raised += [(a.status, a.kind, time.time()) for a in memory.alerts[seen:]]
                wait_scrapes(server, 2)  # each new state is scraped before the next alert
        wait_scrapes(server, 2)
        end = time.time()
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        expected = Counter((status, kind) for status, kind, _ in raised)
        assert {("suspected", "drift"), ("confirmed", "drift"), ("annotation", "version_change")} <= set(
            expected
        )

        rows = api(web, "query", query=grafana(panel["targets"][0]["expr"], "1h"), time=end)
        counted = {
            (r["metric"]["status"], r["metric"]["driftwatch_alert_kind"]): float(r["value"][1]) for r in rows
        }
        assert {k: v for k, v in counted.items() if v} == expected
        # The statuses an open episode can still reach show as 0 (their series exist, at 0).
        assert set(counted) - set(expected) <= {("resolved", "drift")}

        confirmed_at = min(t for status, kind, t in raised if (status, kind) == ("confirmed", "drift"))
        start = raised[0][2] - 5
        marks = api(
            web,
            "query_range",
            query=grafana(annotations["Change points (confirmed drift)"], "1h"),
            start=start,
            end=end,
            step=1,
        )
        times = [float(t) for series in marks for t, _ in series["values"]]
        assert times and min(times) >= confirmed_at - 1.0, (min(times, default=None), confirmed_at)
        versions = api(
            web,
            "query_range",
            query=grafana(annotations["Version changes"], "1h"),
            start=start,
            end=end,
            step=1,
        )
        assert versions
    finally:
        stop(process)
        server.close()
        log.close()
