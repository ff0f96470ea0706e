# TeSO pipeline. Fresh machine:  make demo  (set up + run the demo)   |   make test  (set up + tests)
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TESO := $(VENV)/bin/teso
CONFIG ?= configs/demo.yaml
ARGS ?=

export HF_HUB_OFFLINE := 1
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export NLTK_DATA := $(CURDIR)/$(VENV)/nltk_data

.PHONY: setup demo test data index captions cues features train sql bench clean-cache

# The marker is rebuilt when pyproject.toml changes. torch comes first, pinned to the local CPU
# wheel: letting pip resolve it through the project would pull several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	scripts/install_wordnet.sh $(VENV)/nltk_data || echo "WARNING: WordNet could not be installed; the noun-parser cues (cues.backend=nouns) will stop with a clear error"
	touch $@

setup: $(VENV)/.installed

demo: setup data index captions cues features

data: setup
	$(TESO) data synth --config $(CONFIG) $(ARGS)

index: setup
	$(TESO) index --config $(CONFIG) $(ARGS)

captions: setup
	$(TESO) captions --config $(CONFIG) $(ARGS)

cues: setup
	$(TESO) cues --config $(CONFIG) $(ARGS)

features: setup
	$(TESO) features --config $(CONFIG) $(ARGS)

train: setup
	$(TESO) train --config $(CONFIG) $(ARGS)

sql: setup
	$(TESO) sql --config $(CONFIG) "$(Q)"

test: setup
	$(PY) -m pytest tests -q

bench: setup
	$(PY) bench/run_all.py

clean-cache:
	rm -rf cache/*/ demo/
