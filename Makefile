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

# The demo: every line is a plain s2s command a user can copy; --overwrite: a second run replaces
# the first's outputs in $(DEMO)/ (made with the model of that time).  The bundled example set is
# 8 simulated galaxies seen by SDSS and CFHT, with their noise-free truth.
EX := survey2survey/examples

demo: install
	@mkdir -p $(DEMO)
	$(S2S) --version
	$(S2S) translate $(EX)/sdss --to cfht --out $(DEMO)/cfht --seed 1 --overwrite
	$(S2S) translate $(EX)/cfht --to sdss --out $(DEMO)/sdss --seed 1 --overwrite
	$(S2S) translate $(EX)/sdss --to cfht --model physics --out $(DEMO)/physics-cfht --preview --overwrite
	$(S2S) emulate-noise --survey cfht --band all --n 200 --seed 1 --out $(DEMO)/noise-cfht.fits --overwrite
	$(S2S) evaluate --pred default=$(DEMO)/cfht --ref $(EX)/cfht --truth $(EX)/truth/cfht --out $(DEMO)/eval-sdss-to-cfht --align --overwrite
	$(S2S) evaluate --pred default=$(DEMO)/sdss --ref $(EX)/sdss --truth $(EX)/truth/sdss --out $(DEMO)/eval-cfht-to-sdss --align --overwrite
	@echo "demo done: translations, noise maps, metrics and plots are in $(DEMO)/"

test: install
	$(PY) -m pytest -q

# Benchmarks report numbers (tests assert behaviour); see bench/README.md for the GPU runs.
bench: install
	for b in train_speed translate_speed evaluate_speed prepare_speed simulate_speed; do \
	  echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done

docs: install
	$(PY) -m survey2survey.clidoc > docs/cli.md
	$(PY) -m survey2survey.metrics.reference > docs/metrics.md

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
