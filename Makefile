# sendtrail: `make run` (local stack + demo on the embedded AWS) and `make test`.
# Both install what they need first: the virtualenv and its pinned packages.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed

export PYTHONDONTWRITEBYTECODE = 1

.PHONY: venv run test test-unit test-e2e bench package deploy clean

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

## package: out/$(STAGE)/ - the merged CloudFormation template, code and layer for ARCH; cfn-lint checked
STAGE ?= dev
ARCH  ?= x86_64
package: venv
	$(BIN)/python -m infra.package --stage $(STAGE) --arch $(ARCH)

## deploy: upload out/$(STAGE)/ to BUCKET and create/update the stack sendtrail-$(STAGE) in REGION
##   e.g. make deploy STAGE=prod REGION=eu-west-1 BUCKET=my-artifacts PARAMS="AlertEmail=ops@example.com"
deploy: package
	@test -n "$(BUCKET)" -a -n "$(REGION)" || { echo "make deploy needs BUCKET=<artifact bucket> REGION=<region>"; exit 2; }
	$(BIN)/python -m infra.deploy --stage $(STAGE) --region $(REGION) --bucket $(BUCKET) \
		$(foreach parameter,$(PARAMS),--parameter $(parameter))

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .local-state out
