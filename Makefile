# The two quick-start commands are `make serve` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build used on development machines and CI; point it at your CUDA build on a GPU host.
TORCH_SPEC ?= torch==2.13.0
# Not --quiet: a first install takes minutes, and pip's progress shows it is moving.
PIP := $(BIN)/python -m pip install --disable-pip-version-check

.PHONY: serve test install-service install-models install-train install-test redis lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

## Install the service alone (no torch) and serve the embedded default profile on 127.0.0.1:8000.
serve: install-service
	$(BIN)/unirg serve

install-service: $(BIN)/python
	$(PIP) -e .

## The optional parts on top of the service: model scorers (`models`) or the trainer (`train`).
install-models install-train: install-%: $(BIN)/python
	$(PIP) "$(TORCH_SPEC)" -e ".[$*]"

## Install everything (torch first, so pip does not pick a CUDA build), start Redis, run the tests.
test: install-test redis
	$(BIN)/python -m pytest

install-test: $(BIN)/python
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[test]"

## Start the local Redis the judge-cache tests use, unless one already answers.
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  command -v redis-server >/dev/null || { echo "redis-server is not installed: apt-get install redis-server"; exit 1; }; \
	  mkdir -p /tmp/unirg-redis; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
	    --dir /tmp/unirg-redis --logfile /tmp/unirg-redis/redis.log; \
	  for i in $$(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done; }

lint: install-test
	$(BIN)/ruff check .

## Run every benchmark and print where the results go (bench/RESULTS.md holds the recorded ones).
bench: install-test
	$(BIN)/python bench/bench_rules.py
