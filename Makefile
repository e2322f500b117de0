# The two commands of the quick start:
#   make up    set up, then run the service on its embedded defaults (with the demo when no
#              Prometheus is configured; installs Debian's prometheus for it if missing)
#   make test  set up, then run the whole test suite (installs Debian's prometheus if missing)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
UP_ARGS ?=

.PHONY: up test install system-deps bench clean lint fmt

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Real servers for the tests: Debian's prometheus (with promtool), prometheus-alertmanager (the
# incident delivery's test posts to it), postgresql (the store's scale-out backend; the tests
# start their own throw-away cluster), and Debian's chromium, the headless browser the web
# page's test drives (Playwright never downloads a browser of its own).
system-deps:
	@missing=""; \
	if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then missing="prometheus"; fi; \
	if ! command -v prometheus-alertmanager >/dev/null 2>&1; then missing="$$missing prometheus-alertmanager"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	if ! [ -x /usr/bin/chromium ]; then missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The demo of `make up` runs Debian's prometheus (with promtool) when no Prometheus is configured.
.PHONY: prometheus-deps
prometheus-deps:
	@if [ -z "$$AIOPS_PROMETHEUS_URL" ] && { ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; }; then \
		echo "installing Debian package: prometheus (for the demo of make up)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; \
	fi

up: $(STAMP) prometheus-deps
	$(VENV)/bin/aiops up $(UP_ARGS)

test: $(STAMP) system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

# Style that is checked, not hoped for: ruff's format and lint (settings in pyproject.toml).
# `make fmt` applies the formatter and the safe fixes.
lint: $(STAMP)
	$(VENV)/bin/ruff format --check --quiet .
	$(VENV)/bin/ruff check --quiet .

fmt: $(STAMP)
	$(VENV)/bin/ruff format --quiet .
	$(VENV)/bin/ruff check --quiet --fix .

bench: $(STAMP) system-deps
	$(PY) benchmarks/prometheus_fetch.py

clean:
	rm -rf $(VENV) .aiops build *.egg-info
