# Surblocage: the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LABSTAMP := $(VENV)/.installed-lab

.PHONY: run test lint lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# the lab's packet delayer (NetfilterQueue) builds against libnetfilter-queue-dev from apt
$(LABSTAMP): $(STAMP)
	bash scripts/test-deps.sh
	$(BIN)/pip install --quiet -e '.[dev,lab]'
	touch $(LABSTAMP)

## run: the main job on the embedded default (SQLite): a collector, then one probe cycle against it
run: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: install what the tests need (apt, PostgreSQL, lab tools), then lint and the whole suite
test: $(LABSTAMP)
	bash scripts/test-deps.sh
	$(MAKE) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check probe collector tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

## lab: build the censorship lab, run every scenario and print technique -> verdict
lab: $(LABSTAMP)
	bash scripts/test-deps.sh
	$(BIN)/python -m tests.lab.report

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## bench: every benchmark of docs/benchmarks.md (minutes each; not part of the tests)
bench: $(LABSTAMP)
	$(BIN)/python -m benchmarks.probe_cycle
	$(BIN)/python -m benchmarks.blackbox
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.store_scale --backend sqlite
