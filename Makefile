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

.PHONY: help setup demo reproduce test data index captions cues features foundation train eval report sql bench bench-scale clean-cache refresh serve prefect-server chaos

help: ## this list (CONFIG=configs/NAME.yaml selects the experiment, ARGS='key=value ...' overrides it)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-15s %s\n", $$1, $$2}'

# The marker is rebuilt when pyproject.toml changes. torch comes first, pinned to the local CPU
# wheel: letting pip resolve it through the project would pull several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	scripts/install_wordnet.sh $(VENV)/nltk_data || echo "WARNING: WordNet could not be installed; the noun-parser cues (cues.backend=nouns) will stop with a clear error"
	touch $@

setup: $(VENV)/.installed ## create .venv and install everything (torch CPU wheel first, WordNet)

# The whole experiment of $(CONFIG): data, every stage, the runs' trainings and evaluations, the report.
demo: setup ## the whole experiment of CONFIG: data, every stage, every run, the report
	$(TESO) demo --config $(CONFIG) $(ARGS)

reproduce: setup ## every run of CONFIG at every seed of reproduce.seeds; the claims report (reproduce.out_dir)
	$(TESO) reproduce --config $(CONFIG) $(ARGS)

data: setup ## write the synthetic dataset to synth.out (demo/data)
	$(TESO) data synth --config $(CONFIG) $(ARGS)

index: setup ## index dataset.root into the manifest table (only new or changed videos)
	$(TESO) index --config $(CONFIG) $(ARGS)

captions: setup ## dense captions of every frame -> the captions table
	$(TESO) captions --config $(CONFIG) $(ARGS)

cues: setup ## sounding-object cues from the captions -> the cues table
	$(TESO) cues --config $(CONFIG) $(ARGS)

features: setup ## audio features per condition and text-cue embeddings -> the feature store
	$(TESO) features --config $(CONFIG) $(ARGS)

# Every stage in one flow, computing only what is new (e.g. after videos were added).
refresh: setup ## index, captions, cues, features in one flow, only what is new
	$(TESO) refresh --config $(CONFIG) $(ARGS)

# Scheduled refresh: `make prefect-server` in one terminal, `make serve` (cron: ARGS='--cron "0 3 * * *"') in another.
PREFECT_SERVER_URL ?= http://127.0.0.1:4200/api

prefect-server: setup ## a dedicated Prefect server on 127.0.0.1:4200 (for make serve)
	$(VENV)/bin/prefect server start --host 127.0.0.1 --port 4200

serve: setup ## deploy refresh on a cron schedule to the server and run it
	PREFECT_API_URL=$(PREFECT_SERVER_URL) $(TESO) serve --config $(CONFIG) $(ARGS)

foundation: setup ## build the small random Mask2Former of the CPU configs (train makes it too)
	$(TESO) foundation --config $(CONFIG) $(ARGS)

train: setup ## train TeSO (ARGS=--run NAME for one of the config's runs) -> train.out_dir
	$(TESO) train --config $(CONFIG) $(ARGS)

eval: setup ## metrics under every audio condition, cue recognition, grids -> train.out_dir/eval
	$(TESO) eval --config $(CONFIG) $(ARGS)

report: setup ## the runs side by side: report.md and report.html in report.out_dir
	$(TESO) report --config $(CONFIG) $(ARGS)

sql: setup ## query the caches with DuckDB: make sql Q='SELECT ...'
	$(TESO) sql --config $(CONFIG) "$(Q)"

test: setup ## run the test suite
	$(PY) -m pytest tests -q

bench: setup ## run the benchmarks (speed ratios against baselines)
	$(PY) bench/run_all.py

bench-scale: setup ## data stages at AVSBench size (86,780 frames), 1/10 and 1/100: time, memory, refresh (ARGS='--fractions 0.01 0.1')
	$(PY) bench/bench_scale.py $(ARGS)

chaos: setup ## fault campaign: SIGKILL every stage, concurrent runs, a damaged part, a changed input (~15 min)
	$(PY) scripts/chaos.py $(ARGS)

clean-cache: ## delete the demo's caches, data, runs and report
	rm -rf cache/*/ demo/ runs/demo/ reports/demo/
