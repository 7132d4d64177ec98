# One command each: `make demo` runs the embedded default, `make test` runs every check.
# Both create .venv and install the pinned dependencies (requirements.lock) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench bench-detection bench-state calibrate clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $(STAMP)

demo: install
	$(BIN)/driftwatch demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy driftwatch collectors detectors

unit: install
	$(BIN)/pytest -q

test: lint typecheck unit

bench: install
	$(BIN)/python benchmarks/overhead.py

# Regenerates docs/detection.md: driftwatch against the CUSUM oracle, River and fixed windows
# (seeded; several minutes on 2 cores; `--quick` for a smoke run).
bench-detection: install
	$(BIN)/python -P benchmarks/detection.py

# Checkpoint size and time for 1,000 streams x 8 signals, journal append latency (about 20 s).
bench-state: install
	$(BIN)/python -P benchmarks/state.py

# Regenerates detectors/thresholds.json by simulation (seeded; a few minutes on 2 cores).
calibrate: install
	$(BIN)/python -P -m driftwatch.detectors._calibrate --out detectors/thresholds.json

clean:
	rm -rf $(VENV) build *.egg-info
