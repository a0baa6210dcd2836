# Surblocage: the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LABSTAMP := $(VENV)/.installed-lab
# The exact versions CI tests, with hashes (docs/security.md, "Supply chain"): lock.txt is
# everything CI installs; lock-dev.txt is the same without the lab's NetfilterQueue, which needs C
# headers from apt; lock-runtime.txt is what the container images install. One resolution: the
# other two are constrained by lock.txt.
LOCK := requirements/lock.txt
DEVLOCK := requirements/lock-dev.txt
RUNTIMELOCK := requirements/lock-runtime.txt
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCKFLAGS)

.PHONY: run test lint lab bench clean lock audit

# only the locked versions, hash-checked; the project itself on top of them, without resolving again
$(STAMP): pyproject.toml $(DEVLOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEVLOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# the lab's packet delayer (NetfilterQueue) builds against libnetfilter-queue-dev from apt
$(LABSTAMP): $(STAMP) $(LOCK)
	bash scripts/test-deps.sh
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	touch $(LABSTAMP)

## lock: re-resolve requirements/lock*.txt after a change of pyproject.toml, keeping every pin that
## still fits; `make lock LOCKFLAGS=--upgrade` moves everything to the newest allowed versions,
## `LOCKFLAGS="--upgrade-package aiohttp"` one package
lock: $(STAMP)
	$(COMPILE) --extra dev --extra lab -o $(LOCK)
	$(COMPILE) --extra dev -c $(LOCK) -o $(DEVLOCK)
	$(COMPILE) --extra collector --extra parquet -c $(LOCK) -o $(RUNTIMELOCK)

## audit: pip-audit on the lock; says it skipped, and passes, when the vulnerability service is out of reach
audit: $(STAMP)
	$(BIN)/python scripts/audit.py --lock $(LOCK)

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
	VENV=$(VENV) bash scripts/bench-deps.sh
	$(BIN)/python -m benchmarks.light
	$(BIN)/python -m benchmarks.probe_cycle
	$(BIN)/python -m benchmarks.blackbox
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.load
	$(BIN)/python -m benchmarks.store_scale --backend sqlite
