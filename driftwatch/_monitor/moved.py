"""Where driftwatch's modules moved (0.1.0's flat layout → the stage and driver folders).

State files pickle classes by module path (``driftwatch._alerts.Alert``, the serve decoder
``driftwatch._service.ServiceDecoder``…) and store the decoder's class name, so a checkpoint
written before a move names modules that are gone. The snapshot unpickler and the serve
checkpoint read those names through ``moved()``; add a line here whenever a module with pickled
classes moves again. ``tests/driftwatch/serve/test_state_fixture.py`` restores a 0.1.0 state file.
"""

from __future__ import annotations

__all__ = ["MOVED", "moved", "moved_class"]

#: Old module path → new module path; or, for a module split in several, old class path → new one.
MOVED = {
    "driftwatch._alerts": "driftwatch._alerting.alerts",
    "driftwatch._notify": "driftwatch._alerting.notifiers",
    "driftwatch._notify_config": "driftwatch._alerting.notifiers_config",
    "driftwatch._markers": "driftwatch._alerting.markers",
    "driftwatch._markers_config": "driftwatch._alerting.markers_config",
    "driftwatch._otel": "driftwatch._alerting.otel",
    "driftwatch._prometheus": "driftwatch._alerting.prometheus",
    "driftwatch._service": "driftwatch._serve.service",
    "driftwatch._durable": "driftwatch._serve.durable",
    "driftwatch._state": "driftwatch._serve.store",
    "driftwatch._receiver": "driftwatch._serve.receiver",
    "driftwatch._cli": "driftwatch._cli.main",
    "driftwatch._compare_cli": "driftwatch._cli.compare",
    "driftwatch._junit_cli": "driftwatch._cli.ingest",
    "driftwatch._progress": "driftwatch._cli.progress",
    "driftwatch._compare": "driftwatch._offline.compare",
    "driftwatch._report": "driftwatch._offline.report",
    "driftwatch._bench": "driftwatch._offline.bench",
    "driftwatch._demo": "driftwatch._offline.demo",
    "driftwatch._fake_api": "driftwatch._offline.fake_api",
    "driftwatch._spans": "driftwatch.collectors._spans",
    "driftwatch._snapshot": "driftwatch._monitor.snapshot",
    # driftwatch/_monitor.py became the driftwatch/_monitor/ package: its pickled state classes.
    "driftwatch._monitor.MonitorStats": "driftwatch._monitor.monitor.MonitorStats",
    "driftwatch._monitor._Stream": "driftwatch._monitor.stream._Stream",
    "driftwatch._monitor._SignalWatch": "driftwatch._monitor.watch._SignalWatch",
    "driftwatch._monitor._Recovery": "driftwatch._monitor.watch._Recovery",
    "driftwatch._monitor._Versions": "driftwatch._monitor.versions._Versions",
    "driftwatch._monitor._Recent": "driftwatch._monitor.versions._Recent",
    "driftwatch._monitor._Pending": "driftwatch._monitor.versions._Pending",
}


def moved(path: str) -> str:
    """``path`` (a module, or a module and a class: ``driftwatch._alerts.Alert``) at its new place.

    >>> moved("driftwatch._service.ServiceDecoder"), moved("driftwatch._monitor")
    ('driftwatch._serve.service.ServiceDecoder', 'driftwatch._monitor')
    >>> moved("driftwatch._monitor._SignalWatch")  # a class of a module split in several
    'driftwatch._monitor.watch._SignalWatch'
    >>> moved("driftwatch._cli"), moved("driftwatch._cli.main")  # a new path stays as it is
    ('driftwatch._cli.main', 'driftwatch._cli.main')
    """
    module, name = path, ""
    while module:
        new = MOVED.get(module)
        if new is not None:
            return path if path == new or path.startswith(new + ".") else new + name
        module, _, last = module.rpartition(".")
        name = f".{last}{name}"
    return path


def moved_class(module: str, name: str) -> tuple[str, str]:
    """The (module, name) a pickle's global ``module.name`` has now: class entries first, then modules.

    >>> moved_class("driftwatch._monitor", "_Stream"), moved_class("driftwatch._alerts", "Alert")
    (('driftwatch._monitor.stream', '_Stream'), ('driftwatch._alerting.alerts', 'Alert'))
    """
    new = MOVED.get(f"{module}.{name}")
    if new is not None:
        new_module, _, new_name = new.rpartition(".")
        return new_module, new_name
    return moved(module), name
