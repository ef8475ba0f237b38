# The two commands a newcomer needs:
#   make demo   set everything up and run the example app against the built-in fake OMI
#   make test   set everything up and run every check and test
# Both create .venv themselves and install what is missing, Debian packages included.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
PYTEST_ARGS ?=
PY_SRC := flask_omi tests example_app $(wildcard benchmarks) noxfile.py docs/conf.py
PY_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

.PHONY: test demo lint typecheck docs suite minimum matrix bench system-deps bench-deps clean

$(STAMP): setup.cfg pyproject.toml requirements/dev.txt requirements/tests.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[testing,flask-login]' -r requirements/dev.txt
	touch $@ $(DEMO_STAMP)

# The demo needs only flask-omi itself (Flask, requests, itsdangerous), not the test toolchain.
$(DEMO_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Install Debian packages whose command is missing: $(call apt_install,command:package ...)
define apt_install
	@missing=""; \
	for pair in $(1); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
endef

# chromium drives the browser tests, redis-server backs the shared-session tests, openssl makes
# the certificate of the HTTPS cookie tests.
system-deps:
	$(call apt_install,chromium:chromium redis-server:redis-server openssl:openssl)

# valgrind counts instructions, openssl makes the HTTPS benchmark's certificate, redis-server
# backs the Redis and background-handler benchmarks.
bench-deps:
	$(call apt_install,valgrind:valgrind openssl:openssl redis-server:redis-server)

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SRC)
	$(BIN)/ruff format --check $(PY_SRC)

typecheck: $(STAMP)
	$(BIN)/mypy --strict flask_omi

# The documentation site, warnings as errors.
# Mermaid, which draws the docs' diagrams, is shipped with the docs (from the npm registry, at
# the version pinned here) so that the site reads offline; the built site must name no CDN.
MERMAID_VERSION := 11.12.1
MERMAID := docs/_static/mermaid/mermaid.esm.min.mjs
$(MERMAID):
	$(call apt_install,npm:npm)
	rm -rf build/mermaid && mkdir -p build/mermaid docs/_static/mermaid
	cd build/mermaid && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null && tar xzf mermaid-$(MERMAID_VERSION).tgz
	mkdir -p docs/_static/mermaid/chunks
	cp -r build/mermaid/package/dist/chunks/mermaid.esm.min docs/_static/mermaid/chunks/
	cp build/mermaid/package/LICENSE docs/_static/mermaid/
	cp build/mermaid/package/dist/mermaid.esm.min.mjs $@

docs: $(STAMP) $(MERMAID)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs build/docs
	@if grep -rlE "cdn\.jsdelivr|unpkg\.com|cdnjs" build/docs --include='*.html'; then \
	  echo "the docs load a script from a CDN: they must read offline"; exit 1; fi

# The whole suite with the newest dependencies, under coverage, on every core (pytest-xdist; each
# test module stays on one worker, so module-wide servers start once; every server takes a free port).
XDIST ?= -n auto --dist loadfile
suite: $(STAMP) system-deps
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(XDIST) $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=95

# The suite again with the lowest supported Flask, requests and itsdangerous, on this Python.
minimum: $(STAMP) system-deps
	$(BIN)/nox -s minimum --python $(PY_VERSION) -- -q $(XDIST) $(PYTEST_ARGS)

# Every Python from 3.10 the machine has, newest and lowest dependencies (not part of make test).
# With pyenv, every installed version is made visible to nox as python3.X.
matrix: $(STAMP) system-deps
	PYENV_VERSION="$$(pyenv versions --bare 2>/dev/null | tr '\n' ':')" $(BIN)/nox

test: lint typecheck docs suite minimum

demo: $(DEMO_STAMP)
	$(BIN)/python -m example_app

bench: $(STAMP) bench-deps
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .nox .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
