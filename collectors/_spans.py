"""Finished call spans handed straight to the SDK's span processors: the cheap way to emit a span.

``tracer.start_span()`` + ``span.end()`` costs about 32 µs per span with a dozen attributes
(``benchmarks/overhead.py``): a lock per span, validation of every attribute as it is set, the
tracer's own metrics. driftwatch knows a call span's whole content when the call ends and makes
every attribute itself, so it builds the finished ``ReadableSpan`` then, with the tracer's sampler,
id generator, resource and span processor, and gives it to the processor's ``on_end`` (about 3 µs).
Exporters see the same span either way; ``tests/collectors/test_spans.py`` checks it against
the ``start_span`` path through a real OTLP exporter. The SDK's static samplers (the default
``ParentBased(ALWAYS_ON)``, ``ALWAYS_ON``/``ALWAYS_OFF`` and ``ParentBased`` of them) are not called:
their decision follows from the parent alone, and making their result objects cost more than the
rest of the span (the same test compares each parent case with the sampler called).

The differences a user can see: processors get these spans at their end only (``on_start`` is not
called, as the span was never live), and the SDK's own span counters (``otel.sdk.span.*``) do not
count them. Span limits apply as in the SDK (cleaning only when a limit could bite). Tracers that
are not the OpenTelemetry SDK's (or an SDK of another shape) get the ``start_span`` path, with
the same content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from driftwatch import _semconv as sc
from driftwatch._version import __version__

__all__ = ["CallSpan"]

log = logging.getLogger("driftwatch")
SCOPE = InstrumentationScope(sc.SCOPE_NAME, __version__)


#: The last tracer looked at and the SDK tracer behind it (or None): one lookup per tracer, not per call.
_resolved: tuple[object, SdkTracer | None] = (None, None)


def _sdk_tracer(tracer: trace.Tracer) -> SdkTracer | None:
    """The SDK tracer behind ``tracer`` (also behind the API's proxy), if it has the parts we use."""
    global _resolved
    real = getattr(tracer, "_real_tracer", tracer)  # a ProxyTracer once a provider is registered
    seen, sdk = _resolved
    if real is seen:
        return sdk
    sdk = None
    if isinstance(real, SdkTracer):
        parts = ("sampler", "id_generator", "resource", "span_processor")
        sdk = real if all(hasattr(real, name) for name in parts) else None
    _resolved = (real, sdk)
    return sdk


#: The last sampler looked at and, when it is the SDK's own kind whose decision needs no call (a
#: ``StaticSampler``, or a ``ParentBased`` of them: the default ``parentbased_always_on``, ``_off``,
#: ``always_on``, ``always_off``), its decision by parent: (none, remote sampled, remote not sampled,
#: local sampled, local not sampled); else None (the sampler is called).
_static: tuple[object, tuple[Decision, ...] | None] = (None, None)
_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _static_decisions(sampler: object) -> tuple[Decision, ...] | None:
    """``sampler``'s decision by parent when it is fixed by its type (see ``_static``), else None."""
    global _static
    seen, decisions = _static
    if sampler is seen:
        return decisions
    parts: list[object] = []
    if type(sampler) is StaticSampler:
        parts = [sampler] * 5
    elif type(sampler) is ParentBased:
        parts = [getattr(sampler, name, None) for name in _DELEGATES]
    found = tuple(
        part._decision
        for part in parts
        if type(part) is StaticSampler and isinstance(getattr(part, "_decision", None), Decision)
    )
    decisions = found if len(found) == 5 else None
    _static = (sampler, decisions)
    return decisions


_UNSET = Status(StatusCode.UNSET)
#: The four trace flags a call span can have, made once: (sampled, random trace id) -> flags. A span
#: waits in a batch processor's queue until its batch is exported; every object it holds there is
#: one more for the garbage collector's full passes, which such long-lived objects set off.
_FLAGS = {
    (sampled, random_id): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random_id else 0)
    )
    for sampled in (False, True)
    for random_id in (False, True)
}


class CallSpan:
    """A span that exists only once it ends: its start, its parent and its tracer, until ``end``.

    ``attributes`` are those known at the start (what the sampler is shown). ``start_ns`` (epoch
    nanoseconds) and ``parent`` (the context whose span is the parent) default to now and the
    current context: made on the calling thread, the span can be ended on another one.
    """

    __slots__ = ("_api_span", "_parent", "_start_attributes", "_start_ns", "_tracer", "name")

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        attributes: Mapping[str, Any],
        start_ns: int | None = None,
        parent: otel_context.Context | None = None,
    ) -> None:
        self.name = name
        self._start_ns = time.time_ns() if start_ns is None else start_ns
        self._tracer = _sdk_tracer(tracer)
        self._parent = otel_context.get_current() if parent is None else parent
        self._start_attributes = attributes
        self._api_span: trace.Span | None = None
        if self._tracer is None:
            self._api_span = tracer.start_span(
                name, self._parent, kind=SpanKind.CLIENT, attributes=attributes, start_time=self._start_ns
            )

    @property
    def recording(self) -> bool:
        """False when the span is known to keep nothing (a no-op tracer): its attributes can be skipped.

        The SDK path decides at ``end`` (sampling), so it counts as recording until then.
        """
        return self._api_span is None or self._api_span.is_recording()

    def end(
        self, attributes: Mapping[str, Any], error: str | None = None, end_ns: int | None = None
    ) -> SpanContext | None:
        """Emit the span with all of its ``attributes`` (start ones included); its context, or None.

        ``error``: the status description of a failed call; ``end_ns``: when it ended (epoch
        nanoseconds; default now). Never raises (an SDK surprise is logged and the span is lost,
        counted by the caller as an internal error only if it wants).
        """
        end = time.time_ns() if end_ns is None else end_ns
        try:
            if self._api_span is not None:
                return self._end_api(attributes, error, end)
            return self._end_sdk(attributes, error, end)
        except Exception:
            log.debug("driftwatch: could not emit a call span", exc_info=True)
            return None

    def _end_api(self, attributes: Mapping[str, Any], error: str | None, end_ns: int) -> SpanContext:
        span = self._api_span
        assert span is not None
        if span.is_recording():
            span.set_attributes(attributes)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_ns)
        return span.get_span_context()

    def _end_sdk(self, attributes: Mapping[str, Any], error: str | None, end_ns: int) -> SpanContext | None:
        # What Tracer.start_span + Span.end do (opentelemetry-sdk 1.45), in one go at the end.
        tracer = self._tracer
        assert tracer is not None
        enabled = getattr(tracer, "_is_enabled", None)  # the SDK's tracer configurator can turn it off
        if enabled is not None and not enabled():
            return None
        parent = trace.get_current_span(self._parent).get_span_context()
        ids = tracer.id_generator
        if parent.is_valid:
            trace_id, random_id = parent.trace_id, parent.trace_flags.random_trace_id
        else:
            trace_id, random_id = ids.generate_trace_id(), ids.is_trace_id_random()
        sampler = tracer.sampler
        decisions = _static_decisions(sampler)
        if decisions is not None:
            # What ParentBased.should_sample and StaticSampler.should_sample decide, without calling
            # them: the delegate by parent, the parent's trace state, the start attributes kept.
            trace_state = None
            if parent.is_valid:
                sampled_parent = parent.trace_flags.sampled
                if parent.is_remote:
                    decision = decisions[1] if sampled_parent else decisions[2]
                else:
                    decision = decisions[3] if sampled_parent else decisions[4]
                trace_state = parent.trace_state
            else:
                decision = decisions[0]
            kept: Mapping[str, Any] | None = self._start_attributes
        else:
            # The sampler sees what start_span would have shown it: the attributes known at the start.
            sampled = sampler.should_sample(
                self._parent, trace_id, self.name, SpanKind.CLIENT, self._start_attributes
            )
            decision, trace_state, kept = sampled.decision, sampled.trace_state, sampled.attributes
        flags = _FLAGS[decision is Decision.RECORD_AND_SAMPLE, bool(random_id)]
        context = SpanContext(trace_id, ids.generate_span_id(), False, flags, trace_state)
        if decision is Decision.DROP:
            return context
        # The sampler's attributes come first, as set at the start; the call's overwrite them.
        attrs: dict[str, Any] = dict(kept or {})
        attrs.update(attributes)
        limits = getattr(tracer, "_span_limits", None)
        bounded: Mapping[str, Any] = attrs
        if limits is not None and (
            len(attrs) > (limits.max_span_attributes or len(attrs))
            or limits.max_span_attribute_length is not None
        ):
            # Only then is the SDK's cleaning needed: driftwatch makes every value itself, of valid
            # types, so the common case (default limits, a few dozen attributes) skips its cost.
            most, longest = limits.max_span_attributes, limits.max_span_attribute_length
            bounded = BoundedAttributes(most, attrs, immutable=True, max_value_len=longest)
        span = ReadableSpan(
            name=self.name,
            context=context,
            parent=parent if parent.is_valid else None,
            resource=tracer.resource,
            attributes=bounded,
            kind=SpanKind.CLIENT,
            instrumentation_info=tracer.instrumentation_info,
            status=Status(StatusCode.ERROR, error) if error is not None else _UNSET,
            start_time=self._start_ns,
            end_time=end_ns,
            instrumentation_scope=getattr(tracer, "_instrumentation_scope", None) or SCOPE,
        )
        try:
            tracer.span_processor.on_end(span)
        except Exception:
            # An earlier processor may have taken the span already: the outcome keeps its ids.
            log.debug("driftwatch: a span processor failed on a call span", exc_info=True)
        return context
