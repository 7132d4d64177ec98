"""The monitor: routing outcomes to per-signal detection, confirmation, version comparison, checkpoints.

- ``monitor``: ``Monitor`` (routing by stream, the stream cap, sink fan-out, the public API) and
  ``MonitorStats``
- ``worker``: the bounded queue the agent's threads append to and the thread that drains it
- ``watch``: one signal's lifecycle (``_SignalWatch``, ``_Recovery``; suspect, confirm, recover,
  resolve, new level)
- ``fdr``: Benjamini–Hochberg bookkeeping across concurrent candidates
- ``versions``: version markers, annotations and before/after comparisons
- ``stream``: a stream's state (its watches and version tracking)
- ``snapshot``: pickling with an allow-list, the snapshot format and its checks
- ``moved``: old module and class paths → new ones, for state files written before a move
"""

from driftwatch._monitor.monitor import Monitor, MonitorStats
from driftwatch._monitor.snapshot import READABLE_FORMATS, SNAPSHOT_FORMAT, SNAPSHOT_SETTINGS
from driftwatch._monitor.versions import MIN_PAIRS
from driftwatch._monitor.watch import RECOVERY_TOLERANCE
from driftwatch._outcome import stream_key, stream_labels

__all__ = [
    "MIN_PAIRS",
    "READABLE_FORMATS",
    "RECOVERY_TOLERANCE",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_SETTINGS",
    "Monitor",
    "MonitorStats",
    "stream_key",
    "stream_labels",
]
