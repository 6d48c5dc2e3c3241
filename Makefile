# sendtrail: `make run` (local stack + demo on the embedded AWS) and `make test`.
# Both install what they need first: the virtualenv and its pinned packages.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed

export PYTHONDONTWRITEBYTECODE = 1

.PHONY: venv run test test-unit test-e2e bench clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

## run: the local stack on 127.0.0.1:$(PORT) with the demo delivery, until Ctrl-C
run: venv
	$(BIN)/sendtrail local up --port $(PORT)

## test: every test (unit, integration, end to end)
test: venv
	$(BIN)/python -m pytest -q

test-unit: venv
	$(BIN)/python -m pytest -q tests/unit

test-e2e: venv
	$(BIN)/python -m pytest -q tests/e2e

## bench: speed and write-volume figures (benchmarks/), never asserted in tests
bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .local-state out
