# dlx — the two set-up commands are `make train` and `make test`; both create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.dlx-installed
ARGS   ?=

.PHONY: install train test lint bench tb clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)  ## train the default recipe (LeNet on the bundled digits); ARGS="model=resnet" to override
	$(VENV)/bin/dlx train $(ARGS)

test: $(STAMP)  ## the whole suite
	$(PY) -m pytest -q -n 2 $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: $(STAMP)  ## speed figures: loop overhead, augmentation throughput, CLI start-up
	$(PY) bench/run.py $(ARGS)

tb: $(STAMP)
	$(VENV)/bin/dlx tb outputs

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
