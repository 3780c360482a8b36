# The commands people type. `make run` and `make test` install what they need
# (pinned in requirements/*.lock) into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8080
# make run serves previews: they may name the time of a decision (context.now). make run ALLOW_CLIENT_TIME=0 refuses it.
ALLOW_CLIENT_TIME ?= 1
# make run serves the preview page (/preview) to anyone who reaches it. make run PREVIEW=0 turns it off.
PREVIEW ?= 1
# make test runs the tests on this many processes (pytest-xdist); TEST_WORKERS=0 runs them in make's own.
TEST_WORKERS ?= 2
# The browser of the preview page's test: Debian's chromium (apt-get installs it when missing; nothing downloads a browser build).
CHROMIUM := /usr/bin/chromium
# OpenBLAS picks its kernels by CPU, and numpy its loops; their AVX-512 ones (numpy's float64 exp and
# log are SVML there, not the C library) can move the reference fits of `make train` in their 5th digit.
# AVX2 kernels and loops run on any x86-64 host and give the committed models byte for byte.
export OPENBLAS_CORETYPE := Haswell
export NPY_DISABLE_CPU_FEATURES := X86_V4 AVX512_ICL AVX512_SPR

.PHONY: run test lint types unit browser preview-screenshot spark checks bench compare compare-http compare-models loadtest train schema lock clean

$(VENV)/.run: requirements/run.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/run.lock
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.run requirements/dev.lock
	$(PIP) --no-deps -r requirements/dev.lock  # the lock is complete; --no-deps honours requirements/overrides.txt
	touch $@

run: $(VENV)/.run  ## serve the example bundle on 127.0.0.1:8080 for previews (clients may send context.now; the page is /preview)
	TAILOR_ALLOW_CLIENT_TIME=$(ALLOW_CLIENT_TIME) TAILOR_PREVIEW=$(PREVIEW) $(BIN)/tailor serve --bundle . --host $(HOST) --port $(PORT)

test: lint types unit checks  ## lint, types, every test, and the example bundle's rule tests

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(VENV)/.dev
	$(BIN)/mypy service tests

unit: $(VENV)/.dev browser
	$(BIN)/pytest -n $(TEST_WORKERS)

browser:  ## Debian's chromium for the preview page's browser test, installed with apt-get when missing
	@test -x $(CHROMIUM) || { echo "chromium is missing: installing it with apt-get install -y chromium" >&2; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; }

preview-screenshot: $(VENV)/.dev browser  ## retake docs/preview.png, the README's picture of the preview page
	TAILOR_PREVIEW_SCREENSHOT=docs/preview.png $(BIN)/pytest tests/integration/test_preview_browser.py -k save_as_check

spark: $(VENV)/.dev  ## events.sql in Spark SQL, local mode, against DuckDB (installs a JRE with apt-get and pyspark, pinned)
	command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless)
	$(PIP) pyspark==3.5.5 py4j==0.10.9.7
	$(BIN)/pytest tests/analysis/test_spark.py

checks: $(VENV)/.dev  ## the example bundle's rule tests (checks/) with coverage
	$(BIN)/tailor test --coverage

bench: $(VENV)/.dev  ## benchmarks of the compiled core (pytest-benchmark)
	$(BIN)/pytest tests/bench --benchmark-enable --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

compare: $(VENV)/.dev  ## our core next to GrowthBook's SDK on the same 20-flag workload, one run
	$(BIN)/python loadtests/compare_growthbook.py

compare-http: $(VENV)/.run  ## Tailor's HTTP API next to GrowthBook's proxy-eval on node, 1 worker each, wrk on 127.0.0.1 (about 4 minutes)
	cd loadtests/growthbook && npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python loadtests/compare_http.py $(COMPARE_ARGS)

loadtest: $(VENV)/.run  ## HTTP load tests on 127.0.0.1: ceiling, page views, rendered blocks and email batches, 50 reloads (installs wrk with apt-get if missing)
	$(BIN)/python loadtests/run.py $(LOADTEST_ARGS)

compare-models: $(VENV)/.dev  ## per-request cost of each segment model: serving path, bare ONNX, scikit-learn
	$(BIN)/python loadtests/compare_models.py

train: $(VENV)/.dev  ## retrain the segment models from data/ into models/ and docs/models/
	$(BIN)/tailor train

schema: $(VENV)/.run  ## regenerate the committed JSON Schemas of the file formats
	$(BIN)/tailor schema --out schema

lock:  ## re-resolve requirements/*.lock from pyproject.toml
	$(PYTHON) -m venv /tmp/tailor-uv && /tmp/tailor-uv/bin/pip install --quiet uv==0.13.8
	/tmp/tailor-uv/bin/uv pip compile pyproject.toml --quiet --universal --no-header --python-version 3.11 -o requirements/run.lock
	/tmp/tailor-uv/bin/uv pip compile pyproject.toml --quiet --universal --no-header --python-version 3.11 --extra dev --extra training --extra analysis --extra simulate --override requirements/overrides.txt -o requirements/dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks
