# One command each: `make demo` runs the embedded default, `make test` runs every check.
# Both create .venv and install the pinned dependencies (requirements.lock) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit rules prometheus-tools claude-code chromium report-example bench bench-detection bench-state soak calibrate clean

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

test: lint typecheck rules claude-code chromium unit

# The real Claude Code CLI from npm, pinned, for tests/collectors/test_claude_code_live.py (the version whose
# telemetry the fixtures in ../shared/data/claude-code captured). Without npm the test skips.
CLAUDE_CODE_VERSION := 2.1.197
CLAUDE_CODE_DIR := $(VENV)/claude-code
claude-code:
	@if [ "$$($(CLAUDE_CODE_DIR)/node_modules/.bin/claude --version 2>/dev/null | cut -d' ' -f1)" \
	    != "$(CLAUDE_CODE_VERSION)" ]; then \
	  if command -v npm >/dev/null; then \
	    echo "installing @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) into $(CLAUDE_CODE_DIR)"; \
	    npm install --silent --no-audit --no-fund --prefix $(CLAUDE_CODE_DIR) \
	      @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) \
	      || echo "npm could not install Claude Code: tests/collectors/test_claude_code_live.py will skip"; \
	  else \
	    echo "npm not found: tests/collectors/test_claude_code_live.py will skip"; \
	  fi; \
	fi

# promtool and prometheus come from Debian's `prometheus` package, installed when missing (root or sudo).
# On a host running systemd the package also enables a prometheus service on :9090; stop it if unwanted.
prometheus-tools:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  echo "installing Debian's prometheus package for promtool and prometheus"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; \
	fi

# The shipped Prometheus alerting rules: syntax, then their promtool unit tests.
rules: prometheus-tools
	promtool check rules examples/prometheus/driftwatch-rules.yml
	cd examples/prometheus && promtool test rules driftwatch-rules.test.yml

# Debian's chromium for the headless render test of `driftwatch report` (tests/driftwatch/offline/test_report.py),
# installed when missing (root or sudo; apt-get update once). Without it the test skips.
chromium:
	@if ! command -v chromium >/dev/null; then \
	  echo "installing Debian's chromium for the report render test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null \
	    || echo "could not install chromium: the report render test will skip"; \
	fi

# Example reports under out/: a seeded simulated drop (out/report-example/) and the real Aider
# sonnet-fine.yml reruns (out/report-aider/, when ../shared/data is there).
AIDER_SONNET := ../shared/data/aider/sonnet-fine.yml
report-example: install
	mkdir -p out
	$(BIN)/python -P examples/report/simulate.py out/simulated-outcomes.jsonl
	$(BIN)/python -P -m driftwatch report out/simulated-outcomes.jsonl --out out/report-example
	@if [ -f $(AIDER_SONNET) ]; then \
	  $(BIN)/python -P examples/report/aider.py $(AIDER_SONNET) out/aider-sonnet-outcomes.jsonl && \
	  $(BIN)/python -P -m driftwatch report out/aider-sonnet-outcomes.jsonl --out out/report-aider; \
	fi

# Issue 7's figures, each printed with its goal (about 5 minutes on 2 cores; docs/performance.md).
bench: install
	$(BIN)/python -P benchmarks/overhead.py
	$(BIN)/python -P benchmarks/overhead_profile.py
	$(BIN)/python -P benchmarks/batch_detection.py
	$(BIN)/python -P benchmarks/capacity.py
	$(BIN)/python -P benchmarks/receiver.py
	$(BIN)/python -P benchmarks/state.py

# 30 minutes of `driftwatch serve` at half its measured capacity with the outcome history at its cap
# (pruned), RSS and Python heap sampled, slopes with 95% intervals; not in CI (docs/performance.md).
# SOAK_MINUTES=8 make soak for a short run.
SOAK_MINUTES ?= 30
soak: install
	$(BIN)/python -P benchmarks/soak.py --minutes $(SOAK_MINUTES)

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
