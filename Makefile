# The two commands of the README. Both create .venv if missing and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: demo test test-fast test-load install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch first: keep a torch that is already importable (a GPU build), else the pinned CPU build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# --keep-going: a failing dataset does not stop the others; the report then lists it with its log.
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) --keep-going
	@echo "report: results/demo/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest

# The edit-run loop: unit, CLI and config tests; no Snakemake workflow, SLURM or slow tests (make test runs all).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not workflow and not slurm"

# make test with 2 x cores busy-loop processes alongside; prints the wall time and the load (LOAD_PROCS=N to change).
test-load: $(STAMP)
	tests/stress/run_under_load.sh $(MAKE) test

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	$(BIN)/python -m bench all

clean:
	rm -rf results logs benchmarks .snakemake
