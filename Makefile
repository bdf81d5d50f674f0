# Two commands: `make demo` and `make test`. Both create .venv on first use and reuse it after.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lab bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
# The demo also executes the quickstart notebook, hence the notebooks extra (nbclient, ipykernel).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[notebooks]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m wfa_notebook demo

test: $(VENV)/.installed-test
	$(PY) -m pytest

# Bound to 127.0.0.1 only; --allow-root for containers, where one is often root.
lab: $(VENV)/.installed
	$(PY) -m jupyter lab --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root,) notebooks/

bench: $(VENV)/.installed-test
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_execution.py
	$(PY) benchmarks/bench_explorer.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
