# The two commands of the README's quick start, and the pieces CI calls.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-dev chromium run test bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python chromium
	$(BIN)/pip install --quiet -e ".[dev]"

# The browser tests drive Debian's chromium through Playwright (Playwright's own browser
# download is not possible everywhere we run); nothing to do when it is there.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Quick start 1: the service on SQLite with the example playbooks (no vendor credentials needed).
# Port 8000 unless PORT is set: `PORT=9000 make run`.
run: install
	RESPONDER_WEBHOOK_TOKEN=$${RESPONDER_WEBHOOK_TOKEN:-change-me} $(BIN)/responder serve

# Quick start 2: the whole test suite, SQLite and PostgreSQL.
test: install-dev
	$(BIN)/pytest -q

bench: install-dev
	$(BIN)/python bench/run.py
