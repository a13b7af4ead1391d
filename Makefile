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

.PHONY: run test test-browser lint bench install install-test install-browser clean messages

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

# The browser tests (tests/browser/, `make test-browser`): Debian's chromium, driven by the
# Playwright package of the [test] extra, and axe-core from npm. Never `playwright install`:
# it downloads a browser build of its own, which this project does not use (nor can fetch).
CHROMIUM := /usr/bin/chromium
# npm ci of tests/browser/package.json + package-lock.json, outside the tree (like tests/peers).
BROWSER_NPM := $(VENV)/browser-npm

$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then \
		echo "$(CHROMIUM) is missing: install Debian's chromium as root:" \
			"apt-get install chromium fonts-dejavu-core" >&2; exit 1; fi
	@# CI runs as root on a machine whose package lists may be missing or old.
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium fonts-dejavu-core >/dev/null
	test -x $@

$(VENV)/.installed-browser: $(VENV)/.installed-test tests/browser/package.json tests/browser/package-lock.json | $(CHROMIUM)
	rm -rf $(BROWSER_NPM) && mkdir -p $(BROWSER_NPM)
	cp tests/browser/package.json tests/browser/package-lock.json $(BROWSER_NPM)/
	cd $(BROWSER_NPM) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

install-browser: $(VENV)/.installed-browser

# Compiled catalogues (.mo, not in git), rebuilt when their .po changes; a fuzzy or broken
# entry stops the build.
PO_FILES := $(wildcard idp/translations/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)
%.mo: %.po $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -i $< -o $@

run: install $(MO_FILES)
	@# What this server runs with, for the idp CLI in any other shell (README, "Configuration").
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/python -m idp.effective
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/idp db upgrade
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/idp demo seed
	@echo "Serving http://$(HOST):$(PORT)  (demo relying page: http://$(HOST):$(PORT)/demo/)"
	IDP_ISSUER=$(IDP_ISSUER) $(BIN)/granian --interface wsgi --host $(HOST) --port $(PORT) \
		--workers $(WORKERS) --blocking-threads $(THREADS) wsgi:app

test: install-test $(MO_FILES)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest $(PYTEST_ARGS)

# Real-browser tests only (pytest collects tests/browser/ only when named, so `make test`
# needs no chromium); here a missing chromium or axe-core fails. SQLite is enough for them:
# they test pages, not the database.
test-browser: install-browser $(MO_FILES)
	$(BIN)/pytest tests/browser $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

bench: install-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache test-output

# The template every catalogue follows; tests/unit/test_catalogues.py extracts again into a
# scratch file (POT=...) and fails when a string was added without `make messages`.
POT ?= idp/translations/messages.pot

messages: install
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k _l -k lazy_ngettext:1,2 -k _nl:1,2 \
		--ignore-dirs='.venv instance bench tests' \
		-o $(POT) --project gas-portal-idp .
	@# Each language's catalogue gets the new strings (empty, to translate) and loses the gone ones.
	@if [ "$(POT)" = idp/translations/messages.pot ] && ls idp/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(BIN)/pybabel update -i $(POT) -d idp/translations --no-fuzzy-matching; fi
