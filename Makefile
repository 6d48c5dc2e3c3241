# sendtrail: `make run` (local stack + demo on the embedded AWS) and `make test`.
# Both install what they need first: the virtualenv, its pinned packages and
# the native module (Rust, built into the virtualenv by maturin).

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
STAMP  := $(VENV)/.installed
NATIVE_STAMP := $(VENV)/.native-built
NATIVE_SOURCES := $(shell find native/src -name '*.rs') native/Cargo.toml native/Cargo.lock native/pyproject.toml native/sendtrail_native.pyi
FUZZ_SOURCES := $(NATIVE_SOURCES) $(shell find native/fuzz/fuzz_targets -name '*.rs') native/fuzz/Cargo.toml
# make test: each fuzz target this long; make fuzz: this long.
FUZZ_BRIEF_SECONDS ?= 5
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := verify_token parse_log classify run_items
LAYER_ARCHITECTURES := x86_64 arm64
LAYERS := $(foreach arch,$(LAYER_ARCHITECTURES),out/layers/sendtrail-native-$(arch).zip)

export PYTHONDONTWRITEBYTECODE = 1

.PHONY: venv native browser screenshots run test test-setup test-unit test-e2e lint cargo-test fuzz fuzz-brief layer bench soak load-tests package deploy clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

## native: the Rust module sendtrail_native in the virtualenv: the very wheel of this machine's layer zip
##   (release, abi3, manylinux2014), so make test builds the crate in release once; redone when its sources change
NATIVE_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
$(NATIVE_STAMP): $(STAMP) out/layers/sendtrail-native-$(NATIVE_ARCH).zip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
	    out/wheels/$(NATIVE_ARCH)/sendtrail_native-*.whl
	touch $@

native: $(NATIVE_STAMP)

## browser: Debian's chromium and fonts for the browser tests (Playwright drives /usr/bin/chromium; never
## `playwright install`, which downloads a browser of its own); nothing to do when chromium is there
BROWSER_PACKAGES := chromium fonts-liberation2 fonts-dejavu-core
browser:
	@test -x /usr/bin/chromium && dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
	        $(BROWSER_PACKAGES) >/dev/null; }
	@test -x /usr/bin/chromium || { echo "make: /usr/bin/chromium missing after apt-get install chromium" >&2; exit 1; }

## screenshots: the README's dashboard pictures, from the browser tests (out/screenshots/readme-*.png)
screenshots: native browser
	REQUIRE_NATIVE_MODULE=1 $(BIN)/python -m pytest -q tests/browser/test_dashboard.py -k reads
	mkdir -p docs
	cp out/screenshots/readme-delivery.png docs/dashboard-delivery.png
	cp out/screenshots/readme-hot-clicks.png docs/dashboard-hot-clicks.png

## run: the local stack on 127.0.0.1:$(PORT) with the demo delivery, until Ctrl-C
run: venv native
	$(BIN)/sendtrail local up --port $(PORT)

## test: static analysis, then every test (crate, brief fuzzing, unit, integration, end to end); native parity
##   tests may not skip; the x86_64 layer zip (under a minute of CPU, once) for the layer's import test.
##   pytest runs on PYTEST_WORKERS processes (pytest-xdist), whole files to a worker, so a module's fixtures
##   (the local stack, the package) start once
##   --durations lists the slowest tests in every run, where CI time goes.
##   The steps before pytest (test-setup) run TEST_SETUP_JOBS at a time, each one's output kept together: the
##   release build's fat-LTO link, the fuzz targets' build and fuzzing, mypy and the pip install each keep one
##   core busy, and on a 2-core CI machine the other core has the rest to do.
PYTEST_WORKERS ?= 2
TEST_SETUP_JOBS ?= 2
test:
	$(MAKE) --no-print-directory -j$(TEST_SETUP_JOBS) --output-sync=target test-setup
	REQUIRE_NATIVE_MODULE=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25

test-setup: lint native browser cargo-test fuzz-brief out/layers/sendtrail-native-x86_64.zip

## lint: ruff (lint), mypy (chalicelib/), bandit (the Python that ships and runs locally), clippy (the crate);
##   configured in pyproject.toml, the tools pinned in requirements-dev.txt
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r app.py chalicelib infra
	cd native && cargo clippy --locked --quiet --all-targets --features python -- -D warnings

test-unit: native
	REQUIRE_NATIVE_MODULE=1 $(BIN)/python -m pytest -q tests/unit

test-e2e: venv browser
	$(BIN)/python -m pytest -q tests/e2e

## cargo-test: the crate's own tests (pure Rust, no Python); its Python face is checked warning-free by
##   lint's clippy (--all-targets --features python -D warnings)
cargo-test:
	cd native && cargo test --locked --quiet

## fuzz-brief / fuzz: the fuzz targets (libFuzzer on stable Rust, native/fuzz/run.sh), briefly or at length;
##   fuzz adds 100,000 hostile requests to the public routes (make test runs 2,000 of them)
fuzz-brief: $(FUZZ_SOURCES)
	@mkdir -p native/target/fuzz
	@for target in $(FUZZ_TARGETS); do \
	    FUZZ_LOG=native/target/fuzz/$$target.log native/fuzz/run.sh $$target $(FUZZ_BRIEF_SECONDS) || exit 1; \
	done

# make fuzz also drives the public routes with HIT_FUZZ_REQUESTS hostile requests (tests/integration/test_hit_fuzz.py).
HIT_FUZZ_REQUESTS ?= 100000
fuzz: venv
	@for target in $(FUZZ_TARGETS); do native/fuzz/run.sh $$target $(FUZZ_SECONDS) || exit 1; done
	HIT_FUZZ_REQUESTS=$(HIT_FUZZ_REQUESTS) $(BIN)/python -m pytest -q -s tests/integration/test_hit_fuzz.py

## layer: Lambda layer zips of the native module for x86_64 and arm64 (manylinux2014, abi3), checked
out/layers/sendtrail-native-%.zip: $(STAMP) $(NATIVE_SOURCES) native/layer.py
	@command -v cargo >/dev/null || { echo "make: cargo not found; install Rust (rustup, stable) to build native/" >&2; exit 1; }
	$(BIN)/python native/layer.py build --arch $*

layer: $(LAYERS)
	$(BIN)/python native/layer.py check $(LAYERS)

## bench: ingestion throughput and memory, hit path overhead, cold start (figures, not assertions)
bench: native
	$(BIN)/python -m bench

## load-tests: the issue's acceptance sizes of two tests that make test runs smaller (CI time): the fault
##   injection at 10,000 hits (make test: 2,000) and 60,000 processed objects before new ones (make test: 6,000)
HIT_FAULT_HITS ?= 10000
WORKFLOW_STALL_OBJECTS ?= 60000
load-tests: venv native
	HIT_FAULT_HITS=$(HIT_FAULT_HITS) WORKFLOW_STALL_OBJECTS=$(WORKFLOW_STALL_OBJECTS) $(BIN)/python -m pytest -q -s \
	    tests/integration/test_hit_faults.py "tests/integration/test_local_alarms.py::test_new_objects_behind_60000_processed_ones_are_tracked_and_a_stopped_workflow_alarms"

## soak: 100,000 hits through the local stack (HTTP, Kinesis, Firehose, workflow), counted exactly; not in make test
SOAK_HITS ?= 100000
soak: venv native
	$(BIN)/python -m bench.soak --hits $(SOAK_HITS)

## package: out/$(STAGE)/ - the merged CloudFormation template, code and layer for ARCH; cfn-lint checked
STAGE ?= dev
ARCH  ?= x86_64
package: venv layer
	$(BIN)/python -m infra.package --stage $(STAGE) --arch $(ARCH)

## deploy: upload out/$(STAGE)/ to BUCKET and create/update the stack sendtrail-$(STAGE) in REGION
##   e.g. make deploy STAGE=prod REGION=eu-west-1 BUCKET=my-artifacts PARAMS="AlertEmail=ops@example.com"
deploy: package
	@test -n "$(BUCKET)" -a -n "$(REGION)" || { echo "make deploy needs BUCKET=<artifact bucket> REGION=<region>"; exit 2; }
	$(BIN)/python -m infra.deploy --stage $(STAGE) --region $(REGION) --bucket $(BUCKET) \
		$(foreach parameter,$(PARAMS),--parameter $(parameter))

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .local-state out native/target
