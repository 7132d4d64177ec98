"""``python -m driftwatch``: the ``driftwatch`` command."""

from __future__ import annotations

from driftwatch._cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
