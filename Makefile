# Two commands do all set-up on a fresh machine with Python 3.11+ and make:
#   make serve   # the standalone mock server on http://127.0.0.1:8080 (options: make serve ARGS="--port 9000")
#   make test    # the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
SOURCES := pyproject.toml $(shell find target_profile_mock contracts mockserver plugin -type f -not -path '*/__pycache__/*')

# Every change to $(VENV) runs under one lock, so `make serve` and `make test` started together take turns
# instead of racing; a target the other make finished meanwhile is not redone (see tools/locked.py, which
# echoes the command it runs).
LOCKED = @$(PYTHON) tools/locked.py $(VENV)/.lock $@ $^ --
# the test extra's requirements, read from pyproject.toml
TEST_REQUIREMENTS = $(shell $(PYTHON) -c 'import shlex, tomllib; print(shlex.join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))')

.PHONY: serve test lint bench screenshots clean

$(VENV)/.created:
	$(LOCKED) sh -c '$(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet --upgrade pip'

# a plain (non-editable) install, as users get it, with the redis extra (serve --store redis://...)
$(VENV)/.installed: $(VENV)/.created $(SOURCES)
	$(LOCKED) $(BIN)/python -m pip install --quiet ".[redis]"

# the extra's requirements only: installing ".[test]" would reinstall the package under a running `make serve`
$(VENV)/.installed-test: $(VENV)/.installed
	$(LOCKED) $(BIN)/python -m pip install --quiet $(TEST_REQUIREMENTS)

serve: $(VENV)/.installed
	$(BIN)/target-profile-mock serve $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/python -m ruff check target_profile_mock contracts mockserver plugin tests bench tools

test: lint
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(ARGS)

# a PNG of each dashboard page (needs Chromium: apt-get install chromium)
screenshots: $(VENV)/.installed-test
	$(BIN)/python tests/dashboard_screenshots.py docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
