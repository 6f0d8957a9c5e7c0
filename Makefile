# Two commands on a fresh Debian + Python 3.11 machine:  make demo  |  make test
# Development: make test-fast (unit tests, no workflow; the inner loop)  |  make lint
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip --disable-pip-version-check -q
INSTALL_LOG := $(VENV)/install.log
export PYTHONDONTWRITEBYTECODE := 1
# shell rules (training) call `python`: the one of this virtual environment
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test test-fast lint bench scale fuzz readme slurm-profile clean

# torch goes in first and alone: pip then takes the CPU wheel instead of pulling CUDA builds.
$(STAMP): requirements.txt
	@echo "Installing the virtual environment in $(VENV) (log: $(INSTALL_LOG)) ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@{ $(PIP) install "$$(grep -E '^torch==' requirements.txt)" && $(PIP) install -r requirements.txt; } \
		> $(INSTALL_LOG) 2>&1 || { tail -n 40 $(INSTALL_LOG); exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(SNAKEMAKE) all

# the full suite CI runs: lint, then every test (unit, end to end, local Slurm)
test: $(STAMP) lint
	$(PY) -m pytest

# unit tests that start no workflow, cluster or torchrun (under 3 minutes)
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit -m "not workflow" -q

# ruff (Python) and snakefmt (rules, Snakefile), pinned in requirements.txt, configured in pyproject.toml;
# shell directives are left to the author (snakefmt would need shfmt)
lint: $(STAMP)
	$(VENV)/bin/ruff check scripts tests
	$(VENV)/bin/snakefmt --check --no-format-shell Snakefile rules

bench: $(STAMP)
	$(PY) tests/bench/bench_ingest.py
	$(PY) tests/bench/bench_dag.py
	$(PY) tests/bench/bench_pairs.py
	$(PY) tests/bench/bench_pair_tasks.py
	$(PY) tests/bench/bench_embed.py
	$(PY) tests/bench/bench_keywords.py
	$(PY) tests/bench/bench_train.py
	$(PY) tests/bench/bench_scoring.py
	$(PY) tests/bench/bench_bootstrap.py

# The data path at 3k, 30k and 150k ads on the embedded generator, every rule timed (README, "Scaling");
# SCALE_SIZES="3000 30000" for a shorter run. Not part of `make test`.
SCALE_SIZES ?= 3000 30000 150000
scale: $(STAMP)
	$(PY) tests/bench/scale.py --sizes $(SCALE_SIZES) --json scale.json

# Fuzz the ingestion with at least 100,000 generated records (not part of `make test`; README, "Fuzzing ingestion").
fuzz: $(STAMP)
	$(PY) tests/fuzz/fuzz_ingest.py

# Regenerate README's rule graph and config reference (a test fails when they are stale).
readme: $(STAMP)
	$(PY) tests/tools/update_readme.py

# Make the literal `snakemake --profile slurm ...` work from this clone: Snakemake looks for a bare
# profile name in ./, ~/.config/snakemake/ and /etc/xdg/snakemake/, not in profiles/.
SNAKEMAKE_CONFIG_DIR ?= $(HOME)/.config/snakemake
slurm-profile:
	@mkdir -p $(SNAKEMAKE_CONFIG_DIR)
	@if [ -e $(SNAKEMAKE_CONFIG_DIR)/slurm ] && [ ! -L $(SNAKEMAKE_CONFIG_DIR)/slurm ]; then \
		echo "$(SNAKEMAKE_CONFIG_DIR)/slurm exists and is not a link: move it away first"; exit 1; fi
	@ln -sfn $(CURDIR)/profiles/slurm $(SNAKEMAKE_CONFIG_DIR)/slurm
	@echo "linked $(SNAKEMAKE_CONFIG_DIR)/slurm -> $(CURDIR)/profiles/slurm"

clean:
	rm -rf results .snakemake
