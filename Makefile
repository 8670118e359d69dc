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

.PHONY: install demo test lint bench peers browser screenshots vendor
install: $(VENV)/.installed

# The lab's browser tests drive Debian's Chromium (never a downloaded browser): installed with apt when missing.
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: $(VENV)/.installed
	$(VENV)/bin/headstart backbones --fetch
	$(VENV)/bin/headstart demo --out runs/demo

test: $(VENV)/.installed browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest

# the README's pictures of the lab, taken by its end-to-end test from a real run
screenshots: $(VENV)/.installed browser
	HEADSTART_SCREENSHOTS=docs $(PY) -m pytest tests/test_lab_browser.py

bench: $(VENV)/.installed peers
	$(PY) benchmarks/training.py
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/precision.py

# headstart vs SetFit, HF Trainer and scikit-learn (hours on 2 CPU cores; resumable: re-run to continue)
peers: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(PY) benchmarks/peers.py $(PEERS_ARGS)

# the lab's chart library, fetched again from the npm registry (npm checks the tarball's published integrity)
UPLOT ?= 1.6.32
vendor:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent uplot@$(UPLOT) >/dev/null && tar xzf uplot-$(UPLOT).tgz && \
	cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE \
	   $(CURDIR)/src/headstart/lab/static/vendor/uplot/ && \
	echo "uPlot $(UPLOT) from the npm registry (npm pack uplot@$(UPLOT))" > $(CURDIR)/src/headstart/lab/static/vendor/uplot/VERSION
