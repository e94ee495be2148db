# The two set-up commands: `make demo` and `make test`. Each creates .venv when missing and
# installs through constraints.txt, which pins torch to the local CPU wheel.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet -c constraints.txt
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: train and compare the models that exist on the bundled 8x8 digits (< 5 min on 2 cores)
demo: $(STAMP)
	$(BIN)/deepgen compare --data digits --models ncsn,gan,ddpm,latent-diffusion,gon,vae,made,maf,independent --steps 1200 --batch-size 64 --jobs 2 --out runs/demo \
	  --overwrite -o ddpm.timesteps=100 -o ddpm.channels=16,32 -o ddpm.layers_per_block=1 -s ddpm.sampler=ddim \
	  -s ddpm.steps=20 -o ncsn.channels=16,32 -o ncsn.layers_per_block=1 -s ncsn.steps_per_level=20 -s ncsn.eps=1e-4 \
	  -o gon.hidden=64 -o gon.layers=2 -o gon.w0=10 -s latent-diffusion.sampler=ddim -s latent-diffusion.steps=50

## test: the whole test suite (a few minutes on 2 cores)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(PIP) -e '.[dev,bench]'

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info .pytest_cache
