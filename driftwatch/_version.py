"""The package version, apart from ``driftwatch/__init__.py``: modules that put it in a User-Agent or
an instrumentation scope import it from here, not from the package façade that lazily imports them."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
