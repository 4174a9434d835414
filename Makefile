# Each target bootstraps its own virtualenv (.venv) on first use: Python 3.11+ is all it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST := $(BIN)/pytest -p no:cacheprovider --durations=12

.PHONY: help venv demo dev run test test-unit test-services reliability contract contract-html bench bench-quick profile soak soak-quick lint format clean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "quota-worker needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)  ## create .venv and install the project with its dev tools

demo: $(STAMP)  ## play a realistic day of orders through the real worker (embedded Redis + SQLite)
	$(BIN)/quota-worker demo

dev: $(STAMP)  ## run the worker on the embedded default until Ctrl-C
	$(BIN)/quota-worker dev

test: $(STAMP)  ## the whole suite on the embedded default: unit, integration, e2e, quick fault runs
	$(PYTEST) tests --ignore=tests/reliability
	$(PYTEST) tests/reliability

test-unit: $(STAMP)  ## only the pure unit tests (no I/O)
	$(PYTEST) tests/unit

SERVICE_TESTS ?= tests/integration tests/e2e
test-services: $(STAMP)  ## integration, e2e and quick fault runs, against QUOTA_TEST_* services if set (SERVICE_TESTS: which; RELIABILITY_K: a subset of the fault runs)
	$(PYTEST) $(SERVICE_TESTS)
	$(PYTEST) tests/reliability $(if $(RELIABILITY_K),-k "$(RELIABILITY_K)")

reliability: $(STAMP)  ## the full fault runs (1,000 orders each); writes docs/RELIABILITY.md
	QUOTA_RELIABILITY_ORDERS=$${QUOTA_RELIABILITY_ORDERS:-1000} \
	QUOTA_RELIABILITY_KILLS=$${QUOTA_RELIABILITY_KILLS:-20} \
	QUOTA_RELIABILITY_REPORT=$(VENV)/reliability-table.md $(PYTEST) tests/reliability; \
	status=$$?; \
	$(BIN)/python tests/reliability/write_report.py $(VENV)/reliability-table.md docs/RELIABILITY.md; \
	exit $$status

bench: $(STAMP)  ## the benchmark against bare Celery (embedded; BENCH_ARGS="--database-url ... --broker-url ...")
	$(BIN)/quota-worker bench $(BENCH_ARGS)

bench-quick: $(STAMP)  ## the benchmark's quick form (~1 min): proves it works, figures not meaningful
	$(BIN)/quota-worker bench --quick --history 800 --prune-pair --batch-max 5 --batch-curve 1,5 --out $(VENV)/bench-quick.json $(BENCH_ARGS)

profile: $(STAMP)  ## sample the worker with py-spy while the bench drains (BENCH_ARGS as for bench)
	$(BIN)/python -m pip install --quiet -e '.[dev,profile]'
	$(BIN)/python -m bench.profile --out $(VENV)/profile-bench.json $(BENCH_ARGS)

soak: $(STAMP)  ## the soak (30 min): bounded state through the real worker; SOAK_ARGS="--database-url ..."
	$(BIN)/quota-worker bench --soak --out bench/results/soak-$(shell date +%Y%m%d-%H%M).json $(SOAK_ARGS)

soak-quick: $(STAMP)  ## the soak's quick form (3 min), as CI runs it
	$(BIN)/quota-worker bench --soak --quick --out $(VENV)/soak-quick.json $(SOAK_ARGS)

contract: $(STAMP)  ## regenerate contract/ (JSON Schemas, AsyncAPI, OpenAPI) from the models, then validate it
	rm -rf contract/schemas
	$(BIN)/quota-worker contract schemas --out contract/schemas
	$(BIN)/quota-worker contract asyncapi --out contract/asyncapi.yaml
	$(BIN)/quota-worker contract openapi --out contract/openapi.json
	@if command -v node >/dev/null; then \
	  test -d tools/asyncapi/node_modules || npm ci --prefix tools/asyncapi --no-audit --no-fund; \
	  node tools/asyncapi/validate.mjs contract/asyncapi.yaml; \
	else echo "node not found: contract/asyncapi.yaml not validated"; fi

contract-html: contract  ## render contract/asyncapi.yaml to build/asyncapi/index.html (AsyncAPI generator, HTML template)
	test -d tools/asyncapi-html/node_modules || PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix tools/asyncapi-html --no-audit --no-fund
	node tools/asyncapi-html/render.mjs contract/asyncapi.yaml build/asyncapi

lint: $(STAMP)  ## ruff, ruff format --check, mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove the virtualenv and the embedded default's data
	rm -rf $(VENV) var
