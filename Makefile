# One command per task; each creates the local virtual environment .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
# Extra parameters for the study, e.g. make study ARGS="-p epochs=2"
ARGS ?=

.PHONY: help install study test test-fast notebooks bench lab book book-check clean
.DEFAULT_GOAL := help

help:
	@echo "make study   run the study (profile: $(PROFILE)) into runs/$(PROFILE)"
	@echo "make test    run the test suite (unit tests + notebook regression tests)"
	@echo "make notebooks  re-execute the reference notebooks after editing a notebook"
	@echo "make bench   run every benchmark in benchmarks/"
	@echo "make lab     open JupyterLab on the notebooks (jupytext pairing on)"
	@echo "make book    build the Jupyter Book from the latest study run"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

study: install
	$(PY) -m brainlib study --profile $(PROFILE) $(ARGS)

# Unit tests, then the notebooks' regression tests (nbval) against their reference outputs.
test: install
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg

# Re-execute the reference notebooks (notebooks/*.ipynb) after changing a notebook source.
notebooks: install
	$(PY) -c "import brainlib.notebook as n; n.execute_reference_notebooks()"

test-fast: install
	$(PY) -m pytest tests -m "not slow"

bench: install
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

lab: install
	$(VENV)/bin/jupyter lab notebooks

book: install
	$(PY) -c "import brainlib.book as b; b.stage_book('runs/$(PROFILE)', '_build/src')"
	$(VENV)/bin/jupyter-book build _build/src --path-output _build -W -n --keep-going
	@echo "book: _build/_build/html/index.html"

# Open a chapter of the built book in headless Chromium: plotly drawn offline, Colab link
# right, screenshot in _build/screenshots/ (needs Debian's chromium package).
book-check: install
	$(PY) -m brainlib.bookcheck _build/_build/html

clean:
	rm -rf _build runs/.tmp
