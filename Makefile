# Fresh machine:  make demo  (set up + train/evaluate the ReBNN demo)   |   make test  (set up + run the tests)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo_rebnn_shapes

.PHONY: setup demo lint test bench mutation cpp
RUFF_VERSION ?= 0.8.6
setup:
	bash tools/setup_env.sh $(VENV)

demo: setup
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

# ruff (pyflakes, pycodestyle, import order; settings in pyproject.toml), installed into the venv on first use
lint: setup
	@$(VENV)/bin/ruff --version 2>/dev/null | grep -qx 'ruff $(RUFF_VERSION)' \
		|| $(VENV)/bin/pip install -q 'ruff==$(RUFF_VERSION)'
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/bench_train_step.py

# the C++ runtime (librebnn_ops.so + rebnn_detect, docs/deploy.md) against the venv's libtorch
cpp: setup
	$(PY) tools/build_cpp.py build/cpp

# Mutation testing of rebnn_det/ops, rebnn_det/engine and the packing/kernel Python of rebnn_det/deploy (config:
# [tool.mutmut] in pyproject.toml; results and equivalent mutants: TESTING.md). Slow (see TESTING.md), not part of
# `make test`. Starts from a clean mutants/ so every mutant is tested against the current tests.
# MUTATION_JOBS: parallel mutant workers; MUTMUT_VERSION: the mutmut release the numbers in TESTING.md came from.
MUTATION_JOBS ?= 1
MUTMUT_VERSION ?= 3.8.1
mutation:
	@ls rebnn_det/_C*.so >/dev/null 2>&1 || { echo 'rebnn_det/_C*.so is not built: run make setup first'; exit 1; }
	$(PY) -c "import mutmut, sys; sys.exit(mutmut.__version__ != '$(MUTMUT_VERSION)')" 2>/dev/null \
		|| $(VENV)/bin/pip install 'mutmut==$(MUTMUT_VERSION)'
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(PY) tools/mutation_summary.py
