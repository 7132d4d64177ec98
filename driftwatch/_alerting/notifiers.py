"""On-call notifiers (PagerDuty Events API v2, Slack incoming webhooks, a generic webhook) on one engine.

``export`` runs on the detection thread, so it only decides and enqueues: each notifier has a bounded
queue and one background thread that sends with timeouts, retries 429/5xx/timeouts/connection errors
with exponential backoff and jitter (honouring ``Retry-After``), and gives up after ``max_attempts``.
Everything not delivered is counted in ``Notifier.stats``: a full queue, the rate limit, giving up,
shutdown. The same (alert id, status) is sent at most once, and ``resolved`` goes out only for an
alert this notifier announced, so a page is always closed by the key that opened it.

That memory is in-process unless a state file is attached (``attach_state``; ``driftwatch serve``
attaches its own): then each page is recorded there before it is queued and again once it is sent,
so after a restart an open page is still closed by its resolve (same dedup key), an alert replayed
from the journal is not sent twice, and a page queued but not sent before the crash is sent.

The monitor resolves a suspected alert that fresh data does not confirm, and a confirmed one when its
stream is back at its baseline (or is re-baselined), with the same id: the page that opened is the
page that closes.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx2 as httpx
from opentelemetry import context as otel_context

from driftwatch._alerting.alerts import Alert, describe, resolved_at
from driftwatch._alerting.notifiers_config import PAGERDUTY_URL, NotifierSpec
from driftwatch._config import Config
from driftwatch._monitor.incidents import incident_of
from driftwatch._monitor.snapshot import dumps, loads
from driftwatch._outcome import format_time
from driftwatch._serve.store import StateStore
from driftwatch._stats import Estimate
from driftwatch._version import __version__

__all__ = [
    "Delivery",
    "Notifier",
    "NotifierStats",
    "PagerDutySink",
    "SlackSink",
    "WebhookSink",
    "build_notifiers",
    "delivery_metrics",
    "delivery_summary",
    "synthetic_alert",
]

log = logging.getLogger("driftwatch")

Action = Literal["trigger", "resolve", "note"]
_RANK = {"annotation": 0, "suspected": 1, "confirmed": 2}
# Signals where a rise is good news; for the others (latency, tokens, cost, tool calls) a rise is worse.
_HIGHER_IS_BETTER = {"success", "score"}
_MEMORY = 10_000  # ids remembered for idempotency and open alerts: bounded memory
_RETRY_STATUSES = {408, 429}


@dataclass(slots=True)
class NotifierStats:
    """What happened to every alert handed to one notifier; nothing is dropped uncounted."""

    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    """Gave up: a 4xx other than 408/429, or ``max_attempts`` used up."""
    retries: int = 0
    dropped_queue_full: int = 0
    dropped_rate_limited: int = 0
    dropped_shutdown: int = 0
    duplicates: int = 0
    """The same (id, status) again: not sent twice."""
    filtered: int = 0
    """Below ``min_status``, or a kind this destination does not take."""
    resolves_skipped: int = 0
    """``resolved`` for an alert that was never announced here (or whose announcement failed)."""
    forgotten: int = 0
    """Open alerts evicted from the bounded memory (their resolve will not be sent)."""
    internal_errors: int = 0
    grouped: int = 0
    """Alerts of an incident already announced here (or resolved while others of it are still open):
    not sent on their own (``_monitor/incidents.py``)."""

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Delivery:
    """The fate of one notification: delivered, or failed with the reason."""

    alert_id: str
    status: str
    action: Action
    ok: bool
    attempts: int
    reason: str = ""


@dataclass(slots=True)
class _Request:
    alert: Alert
    action: Action
    enqueued: float = field(default_factory=time.monotonic)


class _TokenBucket:
    """``rate_per_minute`` tokens a minute, holding at most that many (so bursts up to one minute's worth)."""

    def __init__(self, rate_per_minute: float) -> None:
        self.capacity = max(1.0, rate_per_minute)
        self.per_second = rate_per_minute / 60.0
        self._tokens = self.capacity
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _is_degradation(alert: Alert) -> bool:
    return (alert.direction == "down") == (alert.signal in _HIGHER_IS_BETTER)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Notifier:
    """Shared delivery engine; subclasses only turn an alert into a request body (``render``).

    Implements ``AlertSink``: ``export`` never blocks or raises; ``shutdown(timeout)`` drains with a
    deadline. ``flush(timeout)`` waits for the queue to empty; ``deliveries()`` lists recent outcomes.
    """

    kind: ClassVar[str] = "notifier"
    improvements_by_default: ClassVar[bool] = True
    """Whether an improvement (a stream getting better) notifies when ``page_improvements`` is unset."""
    updates_incidents: ClassVar[bool] = False
    """Whether an alert joining an incident already announced is sent (as an update under the
    incident's key: PagerDuty folds it into the open incident) or only counted in ``grouped``."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        min_status: str = "confirmed",
        rate_per_minute: float = 30.0,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        queue_size: int = 1000,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        shutdown_timeout_s: float = 3.0,
        page_improvements: bool | None = None,
        runbook_url: str | None = None,
        dashboard_url: str | None = None,
        label: str | None = None,
    ) -> None:
        if min_status not in _RANK:
            raise ValueError(f"min_status: expected one of {', '.join(_RANK)}, got {min_status!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.min_status = min_status
        self.rate_per_minute = rate_per_minute
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.queue_size = queue_size
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.page_improvements = (
            self.improvements_by_default if page_improvements is None else page_improvements
        )
        self.links = {
            k: v for k, v in (("runbook", runbook_url), ("dashboard", dashboard_url)) if v is not None
        }
        self._label = label
        self.stats = NotifierStats()
        self._results: deque[Delivery] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[_Request] = deque()
        self._busy = False
        self._stop = threading.Event()
        self._closed = False
        self._bucket = _TokenBucket(rate_per_minute)
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._open: OrderedDict[str, Alert] = OrderedDict()  # announced, not yet resolved
        self._members: dict[str, set[str]] = {}  # incident → its alerts in _open
        self._announced: OrderedDict[str, None] = OrderedDict()  # delivered triggers (worker side)
        self._rng = random.Random()
        self._store: StateStore | None = None  # where pages are recorded (attach_state)
        self._thread = threading.Thread(target=self._run, name=f"driftwatch-{self.kind}", daemon=True)
        self._thread.start()

    # -- what subclasses provide -------------------------------------------------------------------

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        """The JSON body for this alert and action, or None when this destination does not take it."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """A label for reports: the type and host, never a path or key (Slack's path is its secret)."""
        return self._label or f"{self.kind} ({urlsplit(self.url).netloc})"

    @property
    def destination(self) -> str:
        """The host alone (a metric label): never a path or key."""
        return urlsplit(self.url).netloc

    @property
    def identity(self) -> str:
        """This destination in the state file: its type and a digest of its URL (and routing key)."""
        secret = f"{self.url}\x1f{getattr(self, 'routing_key', '')}"
        return f"{self.kind}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"

    # -- state across restarts ---------------------------------------------------------------------

    def attach_state(self, store: StateStore) -> None:
        """Record pages in ``store`` from now on, and take up those recorded there before a restart.

        Call before any alert is exported (``driftwatch serve`` does, before restoring its
        checkpoint). Open pages are remembered (their resolve goes out with the same key), statuses
        already sent are not sent again, and what was queued but not sent is queued again.
        """
        pages = store.notifier_pages.pages(self.identity)
        with self._lock:
            for page in pages:
                alert = None
                if page.alert is not None:
                    try:
                        alert = loads(page.alert, f"{self.name}: page {page.alert_id} in {store.path}")
                    except Exception as exc:
                        log.warning("driftwatch: %s", exc)
                if not isinstance(alert, Alert | None):
                    continue
                if page.status == "resolved":
                    done = ["suspected", "confirmed", "resolved"]
                else:
                    done = [s for s in ("suspected", "confirmed") if _RANK[s] <= _RANK.get(page.status, 0)]
                for status in done:
                    self._remember(self._seen, (page.alert_id, status))
                if page.announced:
                    self._remember(self._announced, page.alert_id)
                    if alert is not None and incident_of(alert) is not None:
                        self._remember(self._announced, str(incident_of(alert)))
                if page.status == "resolved":
                    self._open_pop(page.alert_id)
                elif alert is not None:
                    self._open_add(alert)
                if page.queued and alert is not None:
                    self.stats.accepted += 1
                    self._queue.append(_Request(alert, "resolve" if page.status == "resolved" else "trigger"))
            self._store = store
            self._idle.notify_all()

    def _record(self, request: _Request, sent: Delivery | None = None) -> None:
        """Note a queued (``sent`` None) or finished request in the attached state file. Never raises."""
        store, alert = self._store, request.alert
        if store is None or request.action == "note":
            return
        try:
            if sent is None:
                store.notifier_pages.put_page(self.identity, alert.id, alert.status, dumps(alert))
            else:
                ok = sent.ok and request.action == "trigger"
                store.notifier_pages.page_sent(self.identity, alert.id, alert.status, announced=ok)
        except Exception:
            self.stats.internal_errors += 1
            log.warning("driftwatch: %s could not record alert %s in the state file", self.name, alert.id)

    # -- AlertSink ---------------------------------------------------------------------------------

    def export(self, alert: Alert) -> None:
        """Decide and enqueue; returns at once. Never raises."""
        try:
            with self._lock:
                for request in self._decide(alert):
                    self._enqueue(request)
        except Exception:
            self.stats.internal_errors += 1
            log.warning("driftwatch: %s could not queue alert %s", self.name, alert.id, exc_info=True)

    def deliveries(self) -> list[Delivery]:
        """The last 1,000 notifications handled, oldest first: delivered, or failed with the reason."""
        with self._lock:
            return list(self._results)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification is delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what is queued until ``timeout`` (default ``shutdown_timeout_s``), then stop; the
        rest is counted in ``stats.dropped_shutdown``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        timeout = self.shutdown_timeout_s if timeout is None else timeout
        start = time.monotonic()
        self.flush(timeout)
        self._stop.set()  # interrupts a backoff wait; an HTTP call in flight ends within timeout_s
        with self._idle:
            self.stats.dropped_shutdown += len(self._queue)
            self._queue.clear()
            self._idle.notify_all()
        self._thread.join(max(0.05, timeout - (time.monotonic() - start)))
        if self.undelivered():
            # A short-lived process (a replay, a script) logs each failure at most once as it happens;
            # this line at the end says what the whole run did not deliver, and why the last one failed.
            log.warning("driftwatch: %s", self.summary())

    def undelivered(self) -> int:
        """Notifications given up or dropped (rate limit, full queue, shutdown) so far."""
        st = self.stats
        return st.failed + st.dropped_queue_full + st.dropped_rate_limited + st.dropped_shutdown

    def counters(self) -> dict[str, int]:
        """Delivery counters for ``/stats`` and ``/metrics``: sent, retried, failed, dropped by reason."""
        st = self.stats
        return {
            "sent": st.delivered,
            "retried": st.retries,
            "failed": st.failed,
            "dropped_queue_full": st.dropped_queue_full,
            "dropped_rate_limited": st.dropped_rate_limited,
            "dropped_shutdown": st.dropped_shutdown,
        }

    def summary(self) -> str:
        """One line: what was sent, retried, failed and dropped, with the last failure's reason."""
        st = self.stats
        dropped = st.dropped_queue_full + st.dropped_rate_limited + st.dropped_shutdown
        text = (
            f"{self.name}: {st.delivered} sent, {st.retries} retried, {st.failed} failed, {dropped} dropped"
        )
        reasons = [
            f"{n} {why}"
            for n, why in (
                (st.dropped_rate_limited, "rate-limited (rate_per_minute)"),
                (st.dropped_queue_full, "queue full"),
                (st.dropped_shutdown, "at shutdown"),
            )
            if n
        ]
        if reasons:
            text += f" ({', '.join(reasons)})"
        with self._lock:
            failure = next((d for d in reversed(self._results) if not d.ok and d.attempts), None)
        if failure is not None:
            text += f"; last failure: {failure.action} {failure.alert_id}: {failure.reason}"
        return text

    # -- deciding (detection thread, under the lock) ----------------------------------------------

    def _remember(self, memory: OrderedDict[Any, Any], key: Any, value: Any = None) -> bool:
        """Add ``key``; True if it was evicting an older entry."""
        memory[key] = value
        memory.move_to_end(key)
        if len(memory) > _MEMORY:
            memory.popitem(last=False)
            return True
        return False

    def _decide(self, alert: Alert) -> list[_Request]:
        key = (alert.id, alert.status)
        if key in self._seen:
            self.stats.duplicates += 1
            return []
        incident = incident_of(alert)
        if alert.status == "resolved":
            if self._open_pop(alert.id) is None:
                self.stats.resolves_skipped += 1
                return []
            self._remember(self._seen, key)
            if incident is not None and self._members.get(incident):
                rest = [self._open[m] for m in self._members[incident] if m in self._open]
                if any(a.kind != "version_comparison" for a in rest):
                    self.stats.grouped += 1  # the incident stays open until its last alert resolves
                    return []
                # A version comparison is a verdict at one moment and never resolves by itself: the
                # incident closes with its last drift alert, or it would stay open for ever.
                for done in rest:
                    self._open_pop(done.id)
            return [_Request(alert, "resolve")]
        if alert.status == "annotation":
            if self.min_status != "annotation":
                self.stats.filtered += 1
                return []
            self._remember(self._seen, key)
            return [_Request(alert, "note")]
        if _RANK.get(alert.status, 0) < _RANK[self.min_status] or (
            not self.page_improvements and alert.kind != "version_change" and not _is_degradation(alert)
        ):
            self.stats.filtered += 1
            return []
        joining = incident is not None and bool(self._members.get(incident, set()) - {alert.id})
        if alert.id not in self._open and not joining and not self._bucket.take():
            # Only new announcements use tokens: a resolve or an update of an open alert always goes.
            self.stats.dropped_rate_limited += 1
            return []
        self._remember(self._seen, key)
        self._open_add(alert)
        if joining and not self.updates_incidents:
            self.stats.grouped += 1
            return []
        return [_Request(alert, "trigger")]

    def _open_add(self, alert: Alert) -> None:
        self._open_pop(alert.id)
        self._open[alert.id] = alert
        incident = incident_of(alert)
        if incident is not None:
            self._members.setdefault(incident, set()).add(alert.id)
        if len(self._open) > _MEMORY:
            self._open_pop(next(iter(self._open)))
            self.stats.forgotten += 1

    def _open_pop(self, alert_id: str) -> Alert | None:
        alert = self._open.pop(alert_id, None)
        incident = incident_of(alert) if alert is not None else None
        if incident is not None:
            members = self._members.get(incident, set())
            members.discard(alert_id)
            if not members:
                self._members.pop(incident, None)
        return alert

    def _enqueue(self, request: _Request) -> None:
        if self._closed:
            self.stats.dropped_shutdown += 1
            return
        if len(self._queue) >= self.queue_size:
            self.stats.dropped_queue_full += 1
            if request.action == "trigger":
                self._open_pop(request.alert.id)
            self._seen.pop((request.alert.id, request.alert.status), None)
            return
        self.stats.accepted += 1
        self._record(request)
        self._queue.append(request)
        self._idle.notify_all()

    # -- sending (background thread) ---------------------------------------------------------------

    def _run(self) -> None:
        # Our own HTTP calls must not show up as spans in the host's traces (httpx instrumentation).
        otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s),
            headers={"User-Agent": f"driftwatch/{__version__}"},
            follow_redirects=False,
        )
        try:
            while True:
                with self._idle:
                    while not self._queue and not self._stop.is_set():
                        self._idle.wait(0.5)
                    if self._stop.is_set():
                        return
                    request = self._queue.popleft()
                    self._busy = True
                try:
                    result = self._deliver(client, request)
                except Exception as exc:  # a bug here must not kill the thread
                    self.stats.internal_errors += 1
                    log.warning("driftwatch: %s delivery failed", self.name, exc_info=True)
                    result = Delivery(
                        request.alert.id, request.alert.status, request.action, False, 0, repr(exc)
                    )
                self._record(request, result)  # before flush() can see the queue idle
                with self._idle:
                    self._results.append(result)
                    if result.ok:
                        self.stats.delivered += 1
                        if request.action == "trigger":
                            self._remember(self._announced, request.alert.id)
                            incident = incident_of(request.alert)
                            if incident is not None:  # its last resolve closes it, whichever alert
                                self._remember(self._announced, incident)
                    elif result.attempts:
                        self.stats.failed += 1
                        log.warning(
                            "driftwatch: %s gave up on %s %s: %s",
                            self.name,
                            request.action,
                            request.alert.id,
                            result.reason,
                        )
                    self._busy = False
                    self._idle.notify_all()
        finally:
            client.close()

    def _deliver(self, client: httpx.Client, request: _Request) -> Delivery:
        alert, action = request.alert, request.action
        incident = incident_of(alert)
        if action == "resolve" and alert.id not in self._announced and incident not in self._announced:
            with self._lock:
                self.stats.resolves_skipped += 1
            return Delivery(alert.id, alert.status, action, False, 0, "its announcement was not delivered")
        body = self.render(alert, action)
        if body is None:
            with self._lock:
                self.stats.filtered += 1
            return Delivery(alert.id, alert.status, action, True, 0, "not taken by this destination")
        content = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        reason = ""
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            wait: float | None = None
            try:
                response = client.post(self.url, content=content, headers=headers)
            except httpx.TimeoutException:
                reason = f"no answer within {self.timeout_s:g} s"
            except httpx.TransportError as exc:
                reason = f"cannot connect: {exc or type(exc).__name__}"
            else:
                code = response.status_code
                if 200 <= code < 300:
                    return Delivery(alert.id, alert.status, action, True, attempt)
                reason = f"HTTP {code}: {response.text[:200]}"
                if code not in _RETRY_STATUSES and code < 500:
                    break  # the request itself is wrong; sending it again will not help
                wait = _retry_after(response)
            if attempt >= self.max_attempts:
                break
            if wait is None:
                # Exponential backoff with "equal jitter": at least half the step, so retries spread out.
                step = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                wait = step / 2 + self._rng.uniform(0, step / 2)
            else:
                wait = min(wait, max(self.max_backoff_s, 60.0))
            if self._stop.wait(wait):
                reason += "; stopped at shutdown"
                break
            with self._lock:
                self.stats.retries += 1
        return Delivery(
            alert.id, alert.status, action, False, attempt, f"{reason} (after {attempt} attempts)"
        )


def _level(signal: str, e: Estimate) -> str:
    if signal == "success":
        return f"{e.mean * 100:.1f}% [{e.ci_low * 100:.1f}%, {e.ci_high * 100:.1f}%]"
    return f"{e.mean:.4g} [{e.ci_low:.4g}, {e.ci_high:.4g}]"


def _test_mark(alert: Alert) -> str:
    """Marks the synthetic alert of ``driftwatch alert test`` so nobody acts on it.

    Only ``extra["test"] is True`` marks it: version comparisons carry their test's name there.
    """
    return "[TEST] " if alert.extra.get("test") is True else ""


def _round(value: Any, digits: int = 4) -> Any:
    """Floats to ``digits`` significant digits, recursively: people read these, not 16-digit floats."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v, digits) for v in value]
    return value


def _resolved_text(alert: Alert) -> str:
    """``resolved at <RFC 3339>`` when the alert says when it resolved, else empty."""
    at = resolved_at(alert)
    return "" if at is None else f"resolved at {format_time(at)}"


def _stream_text(alert: Alert) -> str:
    return ", ".join(f"{k}={v}" for k, v in alert.stream.items())


def _details(alert: Alert) -> dict[str, Any]:
    """The statistics, flat enough to read in PagerDuty's incident view (rounded for reading)."""
    details: dict[str, Any] = {
        "alert_id": alert.id,
        "kind": alert.kind,
        "status": alert.status,
        "stream": dict(alert.stream),
        "signal": alert.signal,
        "direction": alert.direction,
        "change_at": format_time(alert.change_at),
        "detected_at": format_time(alert.detected_at),
        "baseline": alert.baseline.to_dict(),
        "current": alert.current.to_dict(),
        "effect": alert.effect,
        "effect_ci": list(alert.effect_ci),
        "p_value": alert.p_value,
        "n_baseline": alert.baseline.n,
        "n_current": alert.current.n,
        "delay_obs": alert.delay,
        "detector": dict(alert.detector),
        "message": alert.message,
        **{k: alert.extra[k] for k in ("incident_summary", "tasks_moved") if k in alert.extra},
    }
    rounded: dict[str, Any] = _round(details)
    rounded["p_value"] = _round(alert.p_value, 2)
    return rounded


class PagerDutySink(Notifier):
    """PagerDuty Events API v2: ``trigger`` on confirmed drift, ``resolve`` with the same ``dedup_key``.

    ``severity`` fixes the severity of every trigger; by default a confirmed pass-rate drop is ``error``,
    other degradations (and anything suspected) ``warning``, improvements ``info``. Version-change
    annotations are not sent (they are not problems); ``min_status="suspected"`` pages on suspicion.
    """

    kind = "pagerduty"
    improvements_by_default = False  # an improvement is news, not a reason to wake someone
    updates_incidents = True  # a trigger under the incident's dedup key updates it: no second page

    def __init__(
        self,
        routing_key: str,
        *,
        url: str = PAGERDUTY_URL,
        severity: str | None = None,
        source: str | None = None,
        **options: Any,
    ) -> None:
        self.routing_key = routing_key
        self.severity = severity
        self.source = source
        super().__init__(url, **options)

    def severity_of(self, alert: Alert) -> str:
        if self.severity:
            return self.severity
        if not _is_degradation(alert):
            return "info"
        return "error" if alert.status == "confirmed" and alert.signal == "success" else "warning"

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        if action == "note":
            return None
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": action,
            "dedup_key": incident_of(alert) or alert.id,
        }
        if action == "trigger":
            # One page per incident: its summary (the version change, how many streams moved, worst
            # first) when it spans streams; the alert's own sentence otherwise.
            what = alert.extra.get("incident_summary")
            what = what if isinstance(what, str) and what else describe(alert)
            summary = f"{_test_mark(alert)}driftwatch {alert.status}: {what}"
            event["payload"] = {
                "summary": summary if len(summary) <= 1024 else summary[:1023] + "…",
                "source": self.source or alert.stream.get("service", "driftwatch"),
                "severity": self.severity_of(alert),
                "timestamp": format_time(alert.detected_at),
                "component": alert.stream.get("task", alert.signal),
                "group": alert.stream.get("service", "driftwatch"),
                "class": f"driftwatch.{alert.kind}.{alert.signal}",
                "custom_details": {**_details(alert), **{f"{k}_url": v for k, v in self.links.items()}},
            }
            event["client"] = "driftwatch"
            if self.links:
                event["links"] = [{"href": v, "text": k.capitalize()} for k, v in self.links.items()]
        return event


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackSink(Notifier):
    """Slack incoming webhook: a Block Kit summary (what changed, by how much, since when, with what
    confidence, on how many observations) with a ``text`` fallback; resolves as a short message."""

    kind = "slack"

    def __init__(self, webhook_url: str, **options: Any) -> None:
        super().__init__(webhook_url, **options)

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        mark = _test_mark(alert)
        text = _cut(_escape(f"{mark}driftwatch {alert.status}: {describe(alert)}"), 3000)
        incident = incident_of(alert)
        footer = f"driftwatch · alert id `{alert.id}`" + (f" · incident `{incident}`" if incident else "")
        if self.links:
            footer += " · " + " · ".join(f"<{v}|{k.capitalize()}>" for k, v in self.links.items())
        if mark:
            footer = f"*TEST* from `driftwatch alert test`: not a real drift, no action needed · {footer}"
        context = {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(footer, 3000)}]}
        if action == "resolve":
            line = f":white_check_mark: *{mark}Resolved* {_escape(describe(alert))}"
            if "resolved_by" in alert.extra:
                line += f" — back to {_level(alert.signal, alert.current)}"
            when = _resolved_text(alert)  # "resolved at …" or ""
            if when:
                line += f"\nR{when[1:]}"
            section = {"type": "section", "text": {"type": "mrkdwn", "text": _cut(line, 3000)}}
            fallback = f"{mark}{when or 'resolved'}: {describe(alert)}"
            return {"text": _cut(_escape(fallback), 3000), "blocks": [section, context]}
        if action == "note":
            section = {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(f":information_source: {_escape(describe(alert))}", 3000),
                },
            }
            return {"text": text, "blocks": [section, context]}
        bad = _is_degradation(alert)
        icon = (
            ":large_yellow_circle:"
            if alert.status == "suspected"
            else (":red_circle:" if bad else ":large_green_circle:")
        )
        title = (
            f"{alert.signal} {'degraded' if bad else 'improved'} ({alert.status}) on {_stream_text(alert)}"
        )
        b, c = alert.baseline, alert.current
        if alert.p_value is None:
            confidence = "suspected; confirming on fresh observations"
        else:
            confidence = f"p = {alert.p_value:.2g}"
        detector = alert.detector.get("name") or alert.detector.get("type")
        if detector:
            confidence += f" ({detector})"
        fields = [
            ("What changed", f"{alert.signal} {alert.direction} on {_stream_text(alert)}"),
            (
                "By how much",
                f"{_level(alert.signal, b)} → {_level(alert.signal, c)}\neffect {alert.effect:.3g} "
                f"(95% CI {alert.effect_ci[0]:.3g} .. {alert.effect_ci[1]:.3g})",
            ),
            ("Since", f"{format_time(alert.change_at)} (detected {format_time(alert.detected_at)})"),
            ("Confidence", confidence),
            ("Samples", f"baseline n={b.n}, current n={c.n}"),
        ]
        incident_summary = alert.extra.get("incident_summary")
        if isinstance(incident_summary, str) and incident_summary:
            fields.append(("Incident", incident_summary))
        return {
            "text": text,
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": _cut(f"{icon} {mark}{title}", 150), "emoji": True},
                },
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": _cut(f"*{label}*\n{_escape(value)}", 2000)}
                        for label, value in fields
                    ],
                },
                context,
            ],
        }


class WebhookSink(Notifier):
    """POSTs the Alert JSON (``alert.to_dict()``, with ``resolved_at`` on a resolve and ``links`` when
    ``runbook_url`` / ``dashboard_url`` are set) to ``url`` with optional ``headers``. Full precision:
    this body is for programs."""

    kind = "webhook"

    def render(self, alert: Alert, action: Action) -> dict[str, Any] | None:
        body = alert.to_dict()
        if self.links:
            body["links"] = dict(self.links)
        return body


def build_notifiers(config: Config | Iterable[NotifierSpec]) -> list[Notifier]:
    """The notifiers a configuration asks for (the runtime and the service both call this)."""
    specs = config.notifiers if isinstance(config, Config) else list(config)
    runbook = config.runbook_url if isinstance(config, Config) else None
    dashboard = config.dashboard_url if isinstance(config, Config) else None
    out: list[Notifier] = []
    for spec in specs:
        options: dict[str, Any] = {
            "min_status": spec.min_status,
            "rate_per_minute": spec.rate_per_minute,
            "timeout_s": spec.timeout_s,
            "max_attempts": spec.max_attempts,
            "page_improvements": spec.page_improvements,
            "runbook_url": spec.runbook_url or runbook,
            "dashboard_url": spec.dashboard_url or dashboard,
        }
        if spec.type == "pagerduty":
            assert spec.routing_key  # load_config guarantees it
            out.append(
                PagerDutySink(
                    spec.routing_key,
                    url=spec.url or PAGERDUTY_URL,
                    severity=spec.severity,
                    source=spec.source,
                    **options,
                )
            )
        elif spec.type == "slack":
            assert spec.url
            out.append(SlackSink(spec.url, **options))
        else:
            assert spec.url
            out.append(WebhookSink(spec.url, headers=spec.headers, **options))
    # Two notifiers of a type on one host (two Slack channels, say) get distinct names: the names label
    # the delivery counters in /stats and /metrics.
    seen: dict[str, int] = {}
    for notifier in out:
        name = notifier.name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            notifier._label = f"{name} #{seen[name]}"
    return out


#: The delivery counters as Prometheus metrics (all labelled ``notifier`` = type, ``destination`` = name).
DELIVERY_METRICS = (
    ("sent", "driftwatch_notifications_sent_total", "Notifications delivered (2xx)"),
    ("retried", "driftwatch_notifications_retried_total", "Delivery attempts retried (429, 5xx, timeout)"),
    ("failed", "driftwatch_notifications_failed_total", "Notifications given up (4xx, or max_attempts used)"),
    ("dropped", "driftwatch_notifications_dropped_total", "Notifications not sent, by reason"),
)


def delivery_metrics(notifiers: Iterable[Notifier]) -> list[str]:
    """The notifiers' delivery counters in the Prometheus text format, every series from 0 on."""
    from driftwatch._alerting.prometheus import _escape as escape

    notifiers = list(notifiers)
    lines: list[str] = []
    for key, name, help_text in DELIVERY_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for notifier in notifiers:
            counts = notifier.counters()
            base = f'destination="{escape(notifier.name)}",notifier="{notifier.kind}"'
            if key == "dropped":
                for reason in ("queue_full", "rate_limited", "shutdown"):
                    lines.append(f'{name}{{{base},reason="{reason}"}} {counts["dropped_" + reason]}')
            else:
                lines.append(f"{name}{{{base}}} {counts[key]}")
    return lines


def delivery_summary(notifiers: Iterable[Notifier]) -> list[str]:
    """One line per notifier for the end of a short-lived run: sent, retried, failed, dropped, why."""
    return [n.summary() for n in notifiers]


def synthetic_alert(service: str = "driftwatch") -> Alert:
    """A clearly labelled test alert (``confirmed``, a pass-rate drop) with a fresh id."""
    now = time.time()
    return Alert(
        id=f"test-{uuid.uuid4().hex[:16]}",
        status="confirmed",
        stream={"service": service, "task": "driftwatch-alert-test"},
        signal="success",
        direction="down",
        detected_at=now,
        change_at=now - 3600,
        baseline=Estimate(0.8, 500, 0.763, 0.833),
        current=Estimate(0.5, 120, 0.411, 0.589),
        effect=-0.3,
        effect_ci=(-0.4, -0.2),
        p_value=1e-9,
        detector={"name": "synthetic"},
        message="synthetic test alert from `driftwatch alert test`; not a real drift",
        delay=120,
        extra={"test": True},
    )
