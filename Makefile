# Two commands do everything on a fresh machine (Python 3.10+ with venv and pip):
#   make sweep   installs into .venv, then runs the main job (local Ray, offline wandb)
#   make test    installs into .venv (with test tools), then runs ruff and the tests CI runs
PY      ?= python3
VENV    ?= .venv
SPACE   ?= search_spaces/part3.yaml
DATA    ?=
ARGS    ?=
BIN      = $(VENV)/bin

# Installed once, and again only when the install files change (pip took 7-20 s on every call before).
STAMP    = $(VENV)/.installed

.PHONY: install sweep lint test test-all
$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q -e '.[dev,dashboard]'
	touch $@

install: $(STAMP)

sweep: install
	$(BIN)/python orchestrator.py --space $(SPACE) $(if $(DATA),--data $(DATA)) $(ARGS)

lint: install
	$(BIN)/python -m ruff check .

test: lint
	$(BIN)/python -m pytest -m "not slow" -q

test-all: lint
	$(BIN)/python -m pytest -q
