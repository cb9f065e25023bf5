# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned first: pip then takes the CPU build on this disk instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[all,test]'
	[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } || true
	touch $@

demo: $(STAMP)
	$(PY) examples/demo.py

# Two workers (pytest-xdist): most tests wait on databases, servers and subprocesses, not the CPU.
# The default suite, then the slow one (crash, scale, real-client and MiniLM tests), which a bare pytest leaves out.
test: $(STAMP)
	$(PY) -m pytest -n 2
	$(PY) -m pytest -n 2 -m slow


# Benchmarks need MLflow as the anchor; it lives in its own venv so it never changes ours.
.venv-bench/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet -e '.[all,bench]'
	touch $@

bench: .venv-bench/.installed
	.venv-bench/bin/python benchmarks/tracking.py
	.venv-bench/bin/python benchmarks/weights.py

clean:
	rm -rf $(VENV) .venv-bench demo-store .pytest_cache
