# The two commands: `make run` (set up everything and serve the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 1
THREADS ?= 4
# The issuer follows HOST and PORT unless set explicitly (the demo client is registered
# with it, so it must be the address the browser uses).
IDP_ISSUER ?= http://$(HOST):$(PORT)

.PHONY: run test lint bench install install-test clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	@# What this server runs with, for the idp CLI in any other shell (README, "Configuration").
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/python -m idp.effective
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/idp db upgrade
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/idp demo seed
	@echo "Serving http://$(HOST):$(PORT)  (demo relying page: http://$(HOST):$(PORT)/demo/)"
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/granian --interface wsgi --host $(HOST) --port $(PORT) \
		--workers $(WORKERS) --blocking-threads $(THREADS) wsgi:app

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: install-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache

messages: install
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k _l \
		--ignore-dirs='.venv instance bench tests' \
		-o idp/translations/messages.pot --project gas-portal-idp .
