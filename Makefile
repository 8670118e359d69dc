# Two entry points: `make demo` (the main job on the built-in example) and `make test`.
# Both create .venv on first use. torch is pinned first: an open range would pull a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

.PHONY: install demo test lint bench peers
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/headstart backbones --fetch
	$(VENV)/bin/headstart demo --out runs/demo

test: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest

bench: $(VENV)/.installed peers
	$(PY) benchmarks/training.py
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/precision.py

# headstart vs SetFit, HF Trainer and scikit-learn (hours on 2 CPU cores; resumable: re-run to continue)
peers: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(PY) benchmarks/peers.py $(PEERS_ARGS)
