# Two set-up commands on a fresh machine: `make run` and `make test`. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8008
# The web image needs requirements.txt alone; the embedded default also runs the CPU worker.
RUN_REQS := requirements.txt requirements-worker.txt
DEV_REQS := $(RUN_REQS) requirements-dev.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LOCK := $(BIN)/pip-compile --quiet --strip-extras --no-header --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: run test test-services test-embedded lint lock audit browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-installed: $(BIN)/python $(RUN_REQS)
	$(PIP_INSTALL) $(addprefix -r ,$(RUN_REQS))
	touch $@

$(VENV)/.dev-installed: $(VENV)/.run-installed requirements-dev.txt
	$(PIP_INSTALL) $(addprefix -r ,$(DEV_REQS))
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py serve --port $(PORT)

# Debian's Chromium for the browser tests (never a browser download).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "warning: could not install Debian's chromium; browser tests will be skipped"

# The whole suite twice: on the real services (PostgreSQL, Redis), then on the embedded default
# (SQLite, in-memory channel layer, stub broker with an in-process worker).
test: $(VENV)/.dev-installed browser
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory test-services test-embedded

# A suite that stops making progress (a test stuck past its own timeout, or threads that keep the
# interpreter from exiting) is interrupted after SUITE_LIMIT: pytest then prints what ran and where
# it stood, instead of CI waiting out its own limit with nothing to show.
SUITE_LIMIT ?= 25m
SUITE := timeout --signal=INT --kill-after=60 $(SUITE_LIMIT) $(BIN)/python -m pytest

test-services: $(VENV)/.dev-installed
	$(SUITE) --backend=services $(PYTEST_ARGS)

test-embedded: $(VENV)/.dev-installed
	$(SUITE) --backend=embedded $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate the pinned lock files from the *.in files.
lock: $(VENV)/.dev-installed
	$(LOCK) -o requirements.txt requirements.in
	$(LOCK) -o requirements-worker.txt requirements-worker.in
	sed -i 's/^torch==2.13.0+cpu$$/torch==2.13.0/' requirements-worker.txt
	$(LOCK) -o requirements-dev.txt requirements-dev.in

# Known vulnerabilities in the pinned requirements (needs a vulnerability database reachable from this machine).
audit:
	$(PYTHON) -m venv .venv-audit
	.venv-audit/bin/python -m pip install --quiet --disable-pip-version-check pip-audit
	.venv-audit/bin/pip-audit --strict --no-deps --disable-pip $(addprefix -r ,$(DEV_REQS))

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
