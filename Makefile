# HĐND media archive — developer entry points. `make run` and `make test` are
# all a newcomer needs; both install what is missing first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install run stop status demo test test-unit test-fuzz test-uploads-large test-browser test-faults soak bench lint typecheck docs compose-config clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The web pages' front-end libraries (and swagger-ui for every service's /docs), from the
# npm registry with the committed lockfile; Debian's npm is installed first if missing.
node_modules/.installed: package-lock.json $(STAMP)
	$(BIN)/python -m deploy.local.installers web-assets
	touch $@

install: $(STAMP) node_modules/.installed

run: install          ## start servers + services, load the demo set, Ctrl-C stops
	$(BIN)/mam run

stop:                 ## stop everything `make run` started
	@if [ -x $(BIN)/mam ]; then $(BIN)/mam down; fi

status: install
	$(BIN)/mam status

demo: install
	$(BIN)/mam demo

test: install         ## the whole suite against real servers (what CI runs); then the quick fault tests on the cluster
	$(BIN)/pytest
	$(BIN)/pytest -s tests/faults -m "not fault_full"

test-unit: install    ## logic only, no servers
	$(BIN)/pytest tests/unit

test-uploads-large: install  ## the interrupted resumable upload with 2 GB on MinIO and SeaweedFS (make test: 300/64 MB)
	MAM_TEST_UPLOAD_MB=2048 $(BIN)/pytest tests/integration/test_resumable_uploads.py -k large_upload

test-fuzz: install    ## every service's API fuzzed from its OpenAPI, long run
	MAM_FUZZ_EXAMPLES=200 $(BIN)/pytest tests/e2e/test_api_fuzz.py

test-browser: install ## every browser test (journeys, accessibility, page speed); screenshots in .mam/test-<offset>/screenshots
	$(BIN)/python -m deploy.local.installers chromium
	$(BIN)/pytest tests/browser
	@echo "screenshots: .mam/test-$${MAM_TEST_PORT_OFFSET:-0}/screenshots"

bench: install        ## benchmarks; writes tests/bench/results.json
	$(BIN)/python -m tests.bench

lint: install
	$(BIN)/ruff check shared services deploy tests
	$(BIN)/ruff format --check shared services deploy tests

typecheck: install
	$(BIN)/mypy

docs: install         ## regenerate the event catalogue in docs/architecture.md from shared/events
	$(BIN)/mam docs

compose-config:       ## validate docker-compose.yml (needs the docker client)
	MAM_S3_SECRET_KEY=x MAM_NATS_PASSWORD=x MAM_ES_PASSWORD=x MAM_SEARCH_CURSOR_KEY=x docker compose config -q

clean: stop
	rm -rf .mam

test-faults: install  ## the cluster profile under every fault, each reconciled exactly (long)
	$(BIN)/pytest -s tests/faults

soak: install         ## MINUTES=30: uploads, edits, searches and random kills on the cluster; report + PNG
	$(BIN)/python -m tests.faults.soak --minutes $(or $(MINUTES),30)
