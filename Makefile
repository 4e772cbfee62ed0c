# Two commands matter: `make run` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test venv install install-test test-servers system-test-tools lint bench bench-quick soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[fast]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,fast]'
	touch $(STAMP) $@

venv install: $(STAMP)
install-test: $(TEST_STAMP)

## make run: create the virtual environment if missing, install the app, start it.
run: $(STAMP)
	$(BIN)/kanoa-desktop $(ARGS)

## make test-servers: build llama-server and fetch SmolLM2 into the cache (reused later).
test-servers: $(TEST_STAMP)
	PYTHON=$(BIN)/python bash tests/servers/build_llama_server.sh

## make test: install test extras and the real test servers, then run the whole suite.
## System tools the desktop-integration tests run (validators, icon cache). Debian names.
## Prometheus (2.42 in Debian 12) is the fleet tests' real time-series store. The package
## test (make package-test) runs lintian on the .deb, update-mime-database, and binutils'
## strip (packaging/finish_bundle.py).
SYSTEM_TEST_TOOLS := desktop-file-validate appstreamcli gtk-update-icon-cache prometheus \
	lintian update-mime-database strip
XVFB_TEST_PACKAGES := xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	libxcb-render-util0 libxkbcommon-x11-0
system-test-tools:
	@missing=""; for t in $(SYSTEM_TEST_TOOLS); do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      desktop-file-utils appstream gtk-update-icon-cache shared-mime-info binutils \
	      >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      lintian >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      prometheus >/dev/null; \
	  else echo "Install desktop-file-utils, appstream, gtk-update-icon-cache, shared-mime-info, binutils, lintian and prometheus for the packaging and fleet tests."; fi; \
	fi
	@# The Xvfb window test: xvfb-run, and every library Qt's xcb plugin links (README's line).
	@if command -v dpkg >/dev/null && ! dpkg -s $(XVFB_TEST_PACKAGES) >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(XVFB_TEST_PACKAGES) >/dev/null; \
	  else echo "Install $(XVFB_TEST_PACKAGES) for the Xvfb window test."; fi; \
	fi

test: $(TEST_STAMP) test-servers system-test-tools
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: ruff, and the import contracts in pyproject.toml (core without Qt, ui or cli;
## cli without the window).
lint: $(TEST_STAMP)
	$(BIN)/ruff check kanoa_desktop tests bench
	$(BIN)/lint-imports

## make soak: the models/views/headers property test (tests/ui/model_shapes.py) long, with
## a random seed; `make test` runs it short with a fixed one. A failure prints the seed and
## the smallest failing sequence; a native crash prints the steps that led to it.
SOAK_EXAMPLES ?= 400
soak: $(TEST_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.ui.model_shapes --examples $(SOAK_EXAMPLES) $(SOAK_ARGS)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench,fast]'
	touch $(STAMP) $(TEST_STAMP) $@

## make bench: every benchmark table (the client bench needs the llama.cpp test server; the
## install bench the .deb, built here when missing).
bench: $(BENCH_STAMP) test-servers deb-if-missing
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP) test-servers
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

# make package, make package-test, make install-desktop (packaging/README.md)
include packaging/Makefile.inc
# The package test runs the vLLM test server (test extras), lintian, Xvfb and the desktop
# tools: the same system tools as the test suite.
package-test: $(TEST_STAMP) system-test-tools
