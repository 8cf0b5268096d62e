# survey2survey: the whole set-up is `make demo` (install + run the example) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
S2S    := $(VENV)/bin/s2s
STAMP  := $(VENV)/.s2s-installed
DEMO   ?= demo-output

.PHONY: install demo test bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: a bare `torch` requirement in a fresh environment resolves to a
# multi-GB CUDA build; 2.13.0 satisfies pyproject's range and is all the CPU path needs.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Each line is a plain s2s command a user can copy.
demo: install
	@mkdir -p $(DEMO)
	$(S2S) --version
	$(S2S) surveys

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/run_all.py

docs: install
	$(PY) -m survey2survey.clidoc > docs/cli.md

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
