# Fresh machine:  make demo  (set up + train/evaluate the ReBNN demo)   |   make test  (set up + run the tests)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo_rebnn_shapes

.PHONY: setup demo test bench
setup:
	bash tools/setup_env.sh $(VENV)

demo: setup
	$(PY) tools/demo.py --work-dir $(DEMO_DIR)

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/bench_train_step.py
