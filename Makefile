# EduKnit Learn — real-time dashboard pipeline. `make run` and `make test` do every
# install step themselves (a virtualenv with the pinned versions of requirements.lock).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: run worker api migrate demo token check resync import test test-unit test-integration lint compose-check bench bench-quick chaos clean browser screenshot

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .   # .venv/bin/eduknit
	touch $@

run: $(VENV)/.installed          ## broker + worker + API on this machine (Ctrl-C stops all)
	$(VENV)/bin/eduknit run

worker: $(VENV)/.installed       ## only the Faust worker (ClickHouse server + existing Kafka)
	$(VENV)/bin/eduknit worker

api: $(VENV)/.installed          ## only the API (ClickHouse server + existing Kafka)
	$(VENV)/bin/eduknit api

migrate: $(VENV)/.installed      ## apply ClickHouse migrations
	$(VENV)/bin/eduknit migrate

demo: $(VENV)/.installed         ## fill the running stack with ~500 students over 60 days
	$(VENV)/bin/eduknit demo

token: $(VENV)/.installed        ## make token STUDENT=s1 [ROLE=admin]
	$(VENV)/bin/eduknit token $(or $(STUDENT),s1) --role $(or $(ROLE),student)

check: $(VENV)/.installed        ## make check [ALL=1 | STUDENTS=N]: dashboards vs their counted events
	$(VENV)/bin/eduknit check $(if $(ALL),--all,--students $(or $(STUDENTS),500))

resync: $(VENV)/.installed       ## make resync STUDENT="id ..." | ALL=1: rebuild from learning_events
	$(VENV)/bin/eduknit resync $(if $(ALL),--all,$(foreach s,$(or $(STUDENT),$(error set STUDENT="id ..." or ALL=1)),--student $(s)))

import: $(VENV)/.installed       ## make import FILE=events.jsonl [RATE=n]: backfill into Kafka
	$(VENV)/bin/eduknit import $(or $(FILE),$(error set FILE=path.jsonl or FILE=-)) --rate $(or $(RATE),0)

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

bench: $(VENV)/.installed         ## every benchmark at full size (~15 min); updates BENCHMARKS.md
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
