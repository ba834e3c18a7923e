# The two quick-start commands are `make serve` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build used on development machines and CI; point it at your CUDA build on a GPU host.
TORCH_SPEC ?= torch==2.13.0
# Not --quiet: a first install takes minutes, and pip's progress shows it is moving.
PIP := $(BIN)/python -m pip install --disable-pip-version-check
# A second environment on transformers 5: the model-scorer and trainer tests run there too, and its
# fidelity tests compare with the reference packages' numbers computed in $(VENV) (transformers 4).
# $(VENV) stays on transformers 4, where the reference packages (radgraph, bert-score) run unchanged:
# the pin goes into the same pip command as the extras, or pip resolves the newest major.
TRANSFORMERS4_SPEC ?= transformers>=4.56.2,<5
VENV5 ?= .venv-tf5
TRANSFORMERS5_SPEC ?= transformers>=5,<6
PIP5 := $(VENV5)/bin/python -m pip install --disable-pip-version-check
TRANSFORMERS5_TESTS := tests/test_model_scorers.py tests/test_radgraph.py tests/test_trainer.py tests/test_transformers5.py
PYTEST5 := UNIRG_TRANSFORMERS4_PYTHON="$(abspath $(BIN))/python" $(VENV5)/bin/python -m pytest $(TRANSFORMERS5_TESTS)
# A third environment for the verl adapter's tests in verl's own Reward Loop: verl 0.9.1 needs
# transformers>=5.5.3,<5.11 and brings Ray; it holds verl and the clients package only (the project
# installed without the service's dependencies), and the service under test runs from $(VENV).
VENV_VERL ?= .venv-verl
VERL_SPEC ?= verl==0.9.1
CLIENTS_DEPS := "httpx>=0.27" "pydantic>=2.6" "pydantic-settings>=2.7" "tenacity>=8.2"
PIP_VERL := $(VENV_VERL)/bin/python -m pip install --disable-pip-version-check
# tests/conftest.py needs the service's dependencies, which verl's environment lacks: stop conftest lookup there.
PYTEST_VERL := UNIRG_SERVICE_PYTHON="$(abspath $(BIN))/python" $(VENV_VERL)/bin/python -m pytest --confcutdir=tests/verl_loop tests/verl_loop

.PHONY: serve test test-transformers5 test-verl test-docker install-service install-models install-train install-test install-transformers5 install-verl redis lint bench

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

## Install everything (torch first, so pip does not pick a CUDA build), start Redis, run the tests; then
## the model-scorer and trainer tests again on transformers 5, and the verl adapter in verl's Reward Loop.
test: install-test install-transformers5 install-verl redis
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pyright --pythonpath $(BIN)/python
	$(BIN)/python -m pytest
	$(PYTEST5)
	$(PYTEST_VERL)

install-test: $(BIN)/python
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[test]" "$(TRANSFORMERS4_SPEC)"

## Only the image builds and their smoke run, printing build and start-up times (part of `make test`;
## needs root, podman and debootstrap).
test-docker: install-test redis
	$(BIN)/python -m pytest -s tests/test_docker_images.py

## Only the transformers-5 part of `make test`.
test-transformers5: install-test install-transformers5 redis
	$(PYTEST5)

$(VENV5)/bin/python:
	$(PYTHON) -m venv $(VENV5)

install-transformers5: $(VENV5)/bin/python
	$(PIP5) "$(TORCH_SPEC)"
	$(PIP5) -e ".[test]" "$(TRANSFORMERS5_SPEC)"

## Only the verl part of `make test`: clients.verl in verl's own Reward Loop against a real service.
test-verl: install-test install-verl
	$(PYTEST_VERL)

$(VENV_VERL)/bin/python:
	$(PYTHON) -m venv $(VENV_VERL)

install-verl: $(VENV_VERL)/bin/python
	$(PIP_VERL) "$(TORCH_SPEC)"
	$(PIP_VERL) "$(TORCH_SPEC)" "$(VERL_SPEC)" $(CLIENTS_DEPS) "pytest>=8" "pytest-asyncio>=0.23"
	$(PIP_VERL) --no-deps -e .

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
