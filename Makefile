# perfpulse — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run live docs test lint typecheck pytest bench golden clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,gpu,postgres]'
	touch $(STAMP)

## run: the daemon with the dashboard on http://127.0.0.1:8787/ and history in ./data (Ctrl-C to stop)
DATA_DIR ?= data
run: $(STAMP) web
	$(BIN)/perfpulse serve --data-dir $(DATA_DIR)

## live: the terminal view, system-wide counters every second (`perfpulse stat -a -I 1000`)
live: $(STAMP)
	$(BIN)/perfpulse stat -a -I 1000

## test: lint, type-check and the whole test suite
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) web
	$(BIN)/pytest $(PYTEST_ARGS)

## web: build the dashboard into src/perfpulse/web/ when it is missing or its sources changed
WEB_INDEX   := src/perfpulse/web/index.html
WEB_SOURCES := $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/index.html \
               frontend/package.json frontend/package-lock.json frontend/vite.config.ts frontend/tsconfig.json

.PHONY: web
web: $(WEB_INDEX)

$(WEB_INDEX): $(WEB_SOURCES)
	cd frontend && npm ci --no-audit --no-fund && npm run build
	touch $(WEB_INDEX)

## docs: regenerate docs/METRICS.md from the collectors' catalogues
docs: $(STAMP)
	$(BIN)/python -m perfpulse.metrics_doc > docs/METRICS.md

## bench: every benchmark in bench/, results printed as markdown
bench: $(STAMP)
	$(BIN)/python -m bench

## golden: regenerate the golden end-to-end outputs under tests/golden/
golden: $(STAMP)
	PERFPULSE_REGEN_GOLDEN=1 $(BIN)/pytest tests/test_golden.py -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
