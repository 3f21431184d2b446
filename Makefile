# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 8
GPUS ?= 2

.PHONY: install run demo test lint clean

$(BIN)/.facebench-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

install: $(BIN)/.facebench-installed

run: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(GPUS)

demo: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(GPUS) --configfile workflow/configs/offline-demo.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

test: install lint
	$(BIN)/python -m pytest

clean:
	rm -rf results logs reports/*/ .snakemake
