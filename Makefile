# gpumarket: `make demo` runs the main job end to end, `make test` runs every test.
# Both install what they need (a venv; PostgreSQL for the integration suite) idempotently.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo test lint typecheck unit integration bench postgres docker browser contracts contract-test clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP) docker contracts
	$(BIN)/python scripts/demo.py

postgres:
	@bash scripts/ensure-postgres.sh

docker:
	@bash scripts/ensure-docker.sh
	@bash scripts/build-test-images.sh

# headless Chromium for the dashboard's browser test (Playwright drives Debian's build)
browser:
	@bash scripts/ensure-chromium.sh

# Solidity toolchain from npm (solc-js, forge, anvil, OpenZeppelin), pinned by the lock file
contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

contracts: contracts/node_modules/.installed

contract-test: contracts
	cd contracts && node_modules/.bin/forge test --offline

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts examples
	$(BIN)/ruff format --check src tests bench scripts examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP) postgres docker browser
	GPUMARKET_TEST_POSTGRES_URL=$$(bash scripts/ensure-postgres.sh --url) GPUMARKET_REQUIRE_DOCKER=1 \
		GPUMARKET_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests/integration -q

test: $(STAMP) postgres docker browser contracts lint typecheck contract-test
	GPUMARKET_TEST_POSTGRES_URL=$$(bash scripts/ensure-postgres.sh --url) GPUMARKET_REQUIRE_DOCKER=1 \
		GPUMARKET_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests -q --durations=15

bench: $(STAMP) docker contracts
	$(BIN)/python bench/matching.py
	$(BIN)/python bench/api_throughput.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/provider.py
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/coordinator_gas.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache contracts/node_modules contracts/out contracts/cache
