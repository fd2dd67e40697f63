# callscope — the two commands of the README are `make run` and `make test`.
# Everything else here is a convenience a person may also call.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test lint typecheck unit kafka bench bench-quick soak schemas dashboards system-deps clean help

help:
	@echo "make run    - create the virtual environment on first use, install, start the embedded pipeline"
	@echo "make test   - same environment; install system packages the tests need; lint, typecheck, run every test"
	@echo "make kafka  - start the test Kafka broker in the foreground (prints KAFKA_BOOTSTRAP)"
	@echo "make bench  - run every benchmark under bench/, print one table, write bench/results.json"
	@echo "make bench-quick - the same at small sizes (under five minutes)"
	@echo "make soak   - 10 minutes of calls into 'callscope run' at half the measured maximum; RSS and state must stay flat"
	@echo "make dashboards - regenerate the Grafana dashboards' JSON (dashboards/grafana) from their Python"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The C accelerators (HEP collector, store rows into Arrow): the install builds them; this rebuilds them when a source changed.
SPEEDUPS := $(VENV)/.speedups-stamp
$(SPEEDUPS): collectors/hep/_speedups.c callscope/store/_arrow.c hatch_build.py $(STAMP)
	$(BIN)/python hatch_build.py
	@touch $@

run: $(STAMP) $(SPEEDUPS)
	$(BIN)/callscope run $(ARGS)

system-deps:
	@bash tests/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/callscope schemas export

dashboards: $(STAMP)
	$(BIN)/python -m dashboards.grafana
	$(BIN)/python -m tests.helm.sync_chart_files  # the Helm chart carries copies of the dashboards and rules

test: $(STAMP) $(SPEEDUPS) system-deps lint typecheck
	$(BIN)/python -m pytest $(ARGS)

kafka: $(STAMP) system-deps
	$(BIN)/python -m tests.kafka.broker

bench: $(STAMP) $(SPEEDUPS) system-deps
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(STAMP) $(SPEEDUPS) system-deps
	$(BIN)/python -m bench --quick $(ARGS)

soak: $(STAMP) $(SPEEDUPS)
	$(BIN)/python -m bench.soak $(ARGS)

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
