# `make run`: set up .venv and run the main job on the embedded default (no downloads).
# `make test`: set up .venv and run the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint docs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	$(BIN)/python -m sparsetopo.metrics._warmup
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sparsetopo analyze

test: $(STAMP)
	sh scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sparsetopo tests benchmarks

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

bench: $(STAMP)
	$(BIN)/python benchmarks/pruning.py
	$(BIN)/python benchmarks/encoding.py
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/plot.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/dst_trajectory.py
	$(BIN)/python benchmarks/analyze.py
	$(BIN)/python benchmarks/network_paths.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) sparsetopo-out .pytest_cache
