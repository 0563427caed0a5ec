VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint format bench

install:
	./scripts/install.sh

demo: install
	$(BIN)/evocade evaluate tests/sandbox/programs/pong_tracker.py --game Pong --episodes 2

test:
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_storage.py
