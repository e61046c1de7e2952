# Two commands do all set-up on a fresh machine with Python 3.11+ and make:
#   make serve   # the standalone mock server on http://127.0.0.1:8080
#   make test    # the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: serve test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# a plain (non-editable) install, as users get it
$(VENV)/.installed: pyproject.toml $(BIN)/python $(shell find target_profile_mock contracts mockserver plugin -type f -not -path '*/__pycache__/*')
	$(BIN)/python -m pip install --quiet .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(BIN)/python $(shell find target_profile_mock contracts mockserver plugin -type f -not -path '*/__pycache__/*')
	$(BIN)/python -m pip install --quiet ".[test]"
	@touch $@ $(VENV)/.installed

serve: $(VENV)/.installed
	$(BIN)/target-profile-mock serve $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/python -m ruff check target_profile_mock contracts mockserver plugin tests bench

test: lint
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
