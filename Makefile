VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo docker-image test lint typecheck format bench

install:
	./scripts/install.sh

# The main job, offline: optimize the Pong starter policy with the mutation proposer in the
# local sandbox, recorded in evocade.db; then show the score history and the best program.
demo: install
	$(BIN)/evocade run --game Pong --iterations 15 --sandbox bwrap
	$(BIN)/evocade runs

docker-image:
	eval "$$(scripts/dockerd.sh start)" && scripts/docker-base.sh && \
	  $(BIN)/evocade sandbox build-image --base-image evocade-base:bookworm

test:
	$(BIN)/python -m pytest -q

# mypy (settings in pyproject.toml) is part of lint, so CI (`.ci/run` runs `make lint`) checks it.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck:
	$(BIN)/mypy

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_prompt.py
	PYTHONPATH=. $(BIN)/python benchmarks/bench_checker.py
