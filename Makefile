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

.PHONY: setup demo test data index captions cues features foundation train eval report sql bench clean-cache refresh serve prefect-server

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

# The whole experiment of $(CONFIG): data, every stage, the runs' trainings and evaluations, the report.
demo: setup
	$(TESO) demo --config $(CONFIG) $(ARGS)

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

# Every stage in one flow, computing only what is new (e.g. after videos were added).
refresh: setup
	$(TESO) refresh --config $(CONFIG) $(ARGS)

# Scheduled refresh: `make prefect-server` in one terminal, `make serve` (cron: ARGS='--cron "0 3 * * *"') in another.
PREFECT_SERVER_URL ?= http://127.0.0.1:4200/api

prefect-server: setup
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

serve: setup
	PREFECT_API_URL=$(PREFECT_SERVER_URL) $(TESO) serve --config $(CONFIG) $(ARGS)

foundation: setup
	$(TESO) foundation --config $(CONFIG) $(ARGS)

train: setup
	$(TESO) train --config $(CONFIG) $(ARGS)

eval: setup
	$(TESO) eval --config $(CONFIG) $(ARGS)

report: setup
	$(TESO) report --config $(CONFIG) $(ARGS)

sql: setup
	$(TESO) sql --config $(CONFIG) "$(Q)"

test: setup
	$(PY) -m pytest tests -q

bench: setup
	$(PY) bench/run_all.py

clean-cache:
	rm -rf cache/*/ demo/ runs/demo/ reports/demo/
