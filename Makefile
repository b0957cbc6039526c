# One command per task; each creates the local virtual environment .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= default
# Extra parameters for the study, e.g. make study ARGS="-p epochs=2"
ARGS ?=

.PHONY: help install study test test-other-cpu test-fast notebooks bench lab book book-check clean
.DEFAULT_GOAL := help

help:
	@echo "make study       run the study (profile: $(PROFILE)) into runs/$(PROFILE), build its book; ARGS=\"-p key=value\""
	@echo "make test        the test suite (unit tests + notebook regression tests)"
	@echo "make test-other-cpu  the regression tests under another CPU's arithmetic (ONEDNN_MAX_CPU_ISA=$(OTHER_ISA))"
	@echo "make test-fast   the unit tests without the slow ones"
	@echo "make notebooks   re-execute the reference notebooks and re-record their units (notebooks/recorded)"
	@echo "make bench       run every benchmark in benchmarks/"
	@echo "make lab         JupyterLab on the notebooks (jupytext pairing on); LAB_ARGS=\"--port 8899\""
	@echo "make book        build the Jupyter Book from the latest study run"
	@echo "make book-check  the reader's check: every page of the built book in headless Chromium"
	@echo "make install     create .venv and install the project with every extra"
	@echo "make clean       remove the built book, test leftovers and scratch folders (runs/ stays)"
	@echo "make help        this list"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The study, then its book, then a closing summary (-v in ARGS shows the kernels' output).
study: install
	$(PY) -m brainlib study --book --profile $(PROFILE) $(ARGS)

# Unit tests, then the notebooks' regression tests (nbval) against their reference outputs.
# Two pytest workers (pytest-xdist), each file kept in one (module fixtures, a notebook's
# cells in order). On the 2-core Intel Xeon 167, 2026-12-03: 10 min 24 s, against 13 min 41 s
# for one process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-n $(TEST_WORKERS) --dist loadfile

# The regression tests again, with oneDNN capped one instruction set below this CPU's own
# (AVX2 on an AVX-512 machine, else AVX): another CPU's arithmetic on this one. Retraining
# must stay within the measured spread (brainlib/data/training_spread.toml), and the chapters
# that run TensorFlow themselves (equations against Keras, the models, Grad-CAM) must match
# their references exactly; the other chapters only read recorded predictions.
# REGRESSION_TESTS=... (e.g. "tests notebooks") runs more under the cap.
OTHER_ISA ?= $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo AVX2 || echo AVX)
REGRESSION_TESTS ?= tests/test_recording.py tests/test_training_travels.py \
	notebooks/01_equations.ipynb notebooks/03_models.ipynb notebooks/08_trust.ipynb
test-other-cpu: install
	ONEDNN_MAX_CPU_ISA=$(OTHER_ISA) $(PY) -m pytest $(REGRESSION_TESTS) --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg

# Re-execute the reference notebooks (notebooks/*.ipynb) after changing a notebook or the
# training code; the units they ran on become the recording nbval replays (notebooks/recorded).
notebooks: install
	$(PY) -c "import brainlib.study.notebook as n; n.execute_reference_notebooks()"

test-fast: install
	$(PY) -m pytest tests -m "not slow"

bench: install
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

# Extra flags for JupyterLab, e.g. make lab LAB_ARGS="--port 8899 --no-browser"; as root
# (containers, cloud VMs) --allow-root is added.
LAB_ARGS ?=
lab: install
	$(VENV)/bin/jupyter lab notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

book: install
	$(PY) -c "import brainlib.study.book as b; print('book:', b.build_book('runs/$(PROFILE)'))"

# The reader's check of the built book: every page in headless Chromium, network refused
# (tables, cells, code widths, figures, equations, Colab links); chapter screenshots in
# _build/screenshots/ (needs Debian's chromium package).
book-check: install
	$(PY) tests/bookcheck.py _build/_build/html

# Trained units and executed chapters in runs/ are results: delete runs/<profile> by hand to
# start that profile over.
clean:
	rm -rf _build runs/.tmp notebooks/runs .pytest_cache benchmarks/out
	rm -rf "$${TMPDIR:-/tmp}"/brainlib-test-cache-*
