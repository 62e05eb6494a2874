# EduKnit Learn — real-time dashboard pipeline. `make run` and `make test` do every
# install step themselves (a virtualenv with the pinned versions of requirements.lock).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: run worker api migrate demo token test test-unit test-integration lint compose-check bench bench-quick chaos clean browser screenshot

$(VENV)/.installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $@

run: $(VENV)/.installed          ## broker + worker + API on this machine (Ctrl-C stops all)
	$(PY) -m eduknit.cli run

worker: $(VENV)/.installed       ## only the Faust worker (ClickHouse server + existing Kafka)
	$(PY) -m eduknit.cli worker

api: $(VENV)/.installed          ## only the API (ClickHouse server + existing Kafka)
	$(PY) -m eduknit.cli api

migrate: $(VENV)/.installed      ## apply ClickHouse migrations
	$(PY) -m eduknit.cli migrate

demo: $(VENV)/.installed         ## fill the running stack with ~500 students over 60 days
	$(PY) -m eduknit.cli demo

token: $(VENV)/.installed        ## make token STUDENT=s1 [ROLE=admin]
	$(PY) -m eduknit.cli token $(or $(STUDENT),s1) --role $(or $(ROLE),student)

test: $(VENV)/.installed lint browser  ## lint, unit and integration tests
	$(PY) -m pytest -q -p no:cacheprovider tests

browser:                         ## Debian's headless chromium for the page's browser test
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

screenshot: $(VENV)/.installed browser  ## docs/dashboard.png and docs/dashboard-375.png of the demo page
	EDUKNIT_SCREENSHOT=docs/dashboard.png $(PY) -m pytest -q -p no:cacheprovider \
		tests/integration/test_dashboard_page.py -k shows_what_realtime_says

test-unit: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

test-integration: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

chaos: $(VENV)/.installed         ## long fault runs (~10 min): prints fault | sent | counted | duplicates | lost | result
	$(PY) -m bench.chaos

bench: $(VENV)/.installed         ## issue #4 benchmarks at full size (~15 min); updates BENCHMARKS.md
	$(PY) -m bench.run

bench-quick: $(VENV)/.installed   ## the same code paths at small sizes (< 3 min)
	$(PY) -m bench.run --quick

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

compose-check:                   ## validate docker-compose.yml (installs Debian's docker-compose)
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)
	EDUKNIT_JWT_SECRET=$${EDUKNIT_JWT_SECRET:-validation-only-secret-0123456789abcdef} \
		docker-compose -f docker-compose.yml config --quiet

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
