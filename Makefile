# Two commands do everything on a fresh machine (Python 3.10+ with venv and pip):
#   make sweep   installs into .venv, then runs the main job (local Ray, offline wandb)
#   make test    installs into .venv (with test tools), then runs the tests CI runs
PY      ?= python3
VENV    ?= .venv
SPACE   ?= search_spaces/part3.yaml
DATA    ?=
ARGS    ?=
BIN      = $(VENV)/bin

.PHONY: install sweep test test-all
$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/activate
	$(BIN)/python -m pip install -q -e '.[dev]'

sweep: install
	$(BIN)/python orchestrator.py --space $(SPACE) $(if $(DATA),--data $(DATA)) $(ARGS)

test: install
	$(BIN)/python -m pytest -m "not slow" -q

test-all: install
	$(BIN)/python -m pytest -q
