# Every target installs the project first (.venv), so a fresh clone needs no manual step.
# Variables: CXR_DATA (data root), DATASET (cxr3 | makris2020), FORCE=1 (let clean delete runs),
# FETCH=1 (targets that need the corpus fetch it when it is missing).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CXR := $(BIN)/cxr
INSTALLED := $(VENV)/.installed
DATASET ?= cxr3
PYTEST_ARGS ?=
# NPROC=N: training runs on N processes under torchrun (one per GPU; on CPU, N processes share the
# cores). For several machines run torchrun yourself: docs/scaling.md, "More than one GPU or machine".
# Every command's runs go under CXR_RUNS (default runs/ in the working directory).
RUNS := $(or $(CXR_RUNS),runs)
TRAIN := $(if $(NPROC),$(BIN)/torchrun --standalone --nproc_per_node $(NPROC) --no-python -- $(CXR),$(CXR))

SHORTCUT_VARIANTS ?= framing,v3,adversary,v3+adversary,v2,v2+v3,v2+adversary,v2+v3+adversary
REPRODUCE_PROFILE ?= cpu
SEGMENTER ?=
.PHONY: lungs lungs-only lungs-train test-fast lint export reproduce choose-backbone help install corpus fetch import gpu-check gpu-check-data counterfactual shortcut-proof choose-v3 gan-variants precision-check data manifests test tensorboard clean demo compare classify gan-train synth bench evaluate mitigations serve gate-check load-test

help:  ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(INSTALLED): setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,dicom]'
	touch $@

install: $(INSTALLED)  ## Create .venv and install the project (editable) with its test extras.

corpus: $(INSTALLED)
	@$(CXR) data root >/dev/null 2>&1 || { if [ "$(FETCH)" = 1 ]; then $(CXR) data fetch $(FETCH_ARGS); \
	  else $(CXR) data root; fi; }

fetch: $(INSTALLED)  ## Build the corpus from its public sources (verified, resumable): CXR_DATA, FETCH_ARGS.
	$(CXR) data fetch $(FETCH_ARGS)

import: $(INSTALLED)  ## Your own data as a manifest: SRC (class folders or a CSV), NAME, IMPORT_ARGS (e.g. --map 'P=covid').
	@test -n "$(SRC)" -a -n "$(NAME)" || { echo "make import needs SRC=FOLDER_OR_CSV NAME=NAME" >&2; exit 2; }
	$(CXR) data import "$(SRC)" --name "$(NAME)" $(IMPORT_ARGS)

data: corpus  ## Verify every manifest row's file against its sha256.
	$(CXR) data verify

manifests: corpus  ## Regenerate data_manifests/*.csv from the corpus metadata (deterministic).
	$(CXR) data manifests

test: $(INSTALLED)  ## Run the tests (unit + small integration tests on real images; without the corpus, on tests/data).
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the test suite is missing" >&2; fi; \
	exit $$rc

lint: $(INSTALLED)  ## Check the code with flake8 (120 columns) and the import contracts (tests/test_layers.py).
	$(BIN)/flake8
	$(BIN)/pytest -q -p no:cacheprovider tests/test_layers.py tests/test_code_map.py

test-fast: $(INSTALLED)  ## Run the tests without the integration tests (those that train or fetch).
	@$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

tensorboard: $(INSTALLED)  ## Serve TensorBoard over runs/ and data/synthetic/ (http://localhost:6006).
	mkdir -p $(RUNS) data/synthetic
	$(BIN)/tensorboard --logdir_spec runs:$(RUNS),synthetic:data/synthetic --port 6006

demo: corpus  ## The main job: data check, GAN, synthesis, v1 vs v2 over 3 seeds, report (CPU).
	$(CXR) data verify
	$(TRAIN) experiment demo

N ?= 100
SEEDS ?= 0,1,2
FOLDS ?= 0
compare: corpus  ## v1 vs v2 with intervals: NPROC, PRECISION, N, SEEDS, FOLDS, BACKBONE, DATASET, GAN_RUN, SWEEP_N, PROFILE, HOLDOUT, CF=1 (v3, v2+v3), LUNG_GAN=1 (v2-lungs).
	$(TRAIN) experiment compare --dataset $(DATASET) --n $(N) --seeds $(SEEDS) --folds $(FOLDS) \
	  $(if $(BACKBONE),--backbone $(BACKBONE)) $(if $(PROFILE),--profile $(PROFILE) --gan-profile $(PROFILE)) \
	  $(if $(GAN_RUN),--gan-run $(GAN_RUN)) $(if $(SWEEP_N),--sweep $(SWEEP_N)) \
	  $(if $(HOLDOUT),--holdout-source $(HOLDOUT)) $(if $(PRECISION),--precision $(PRECISION)) \
	  $(if $(filter 1,$(CF)),--counterfactual) $(if $(filter 1,$(LUNG_GAN)),--lung-gan) $(COMPARE_ARGS)

gan-train: PROFILE ?= cpu
gan-train: corpus  ## Train the CycleGAN: NPROC, PRECISION, PROFILE=cpu|paper, DATASET, GAN_RUN (default runs/gan/<profile>), GAN_ARGS.
	$(TRAIN) gan train --profile $(PROFILE) --dataset $(DATASET) --out $(or $(GAN_RUN),$(RUNS)/gan/$(PROFILE)) \
	  $(if $(PRECISION),--precision $(PRECISION)) $(GAN_ARGS)

synth: $(INSTALLED)  ## N synthetic covid images from a trained CycleGAN: N, GAN_RUN (default runs/gan/cpu), SYNTH_ARGS.
	$(CXR) gan synth --n $(N) --run $(or $(GAN_RUN),$(RUNS)/gan/$(or $(PROFILE),cpu)) $(SYNTH_ARGS)

AUG ?= v1
SYNTH ?= data/synthetic/cpu/manifest.csv
CAM_CLASS ?= predicted
classify: corpus  ## Train + test a classifier: NPROC, PRECISION, AUG=v1|v2|v3|v2+v3, BACKBONE, DATASET, PROFILE, WEIGHTS, SYNTH, CAM_CLASS.
	$(TRAIN) classify train --aug $(AUG) --dataset $(DATASET) --synth $(SYNTH) --cam-class $(CAM_CLASS) \
	  $(if $(PROFILE),--profile $(PROFILE)) $(if $(BACKBONE),--backbone $(BACKBONE)) \
	  $(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(PRECISION),--precision $(PRECISION)) $(CLASSIFY_ARGS)

lungs: corpus  ## The lung segmenter measured: held-out Dice/HD95 per source and label, masks for the corpus (cached), overlays: runs/lungs/report/ (SEGMENTER=FILE).
	$(CXR) lungs evaluate $(if $(SEGMENTER),--segmenter $(SEGMENTER)) $(LUNGS_ARGS)

lungs-only: corpus  ## Whole image or lungs only? v1 both ways over 3 seeds, decided on validation: runs/mitigations/lungs-only/choice.md.
	$(CXR) study lungs-only $(LUNGS_ONLY_ARGS)

lungs-train: corpus  ## Retrain the lung segmenter's fold models on the human masks (~18 min on 2 cores): runs/lungs/segmenter/ (LUNGS_TRAIN_ARGS).
	$(CXR) lungs train $(LUNGS_TRAIN_ARGS)

GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check-data: corpus  ## The folder gpu-check reads (300 training images at 256 px + manifest, under 40 MB): gpu-check-data/.
	$(CXR) perf gpu-check-data

gpu-check:  ## Everything a GPU must show, bounded (< 8 min), needing nothing installed: runs/gpu-check/ (QUICK=1: tiny sizes; REF=DIR).
	$(GPU_PYTHON) -m pipelines.perf.gpucheck run $(if $(filter 1,$(QUICK)),--quick) $(if $(REF),--reference $(REF))

counterfactual: corpus  ## The v3 set: a source-translation CycleGAN (NIH <-> others, labels kept) and its images: DATASET, COUNTERFACTUAL_ARGS.
	$(CXR) experiment counterfactual --dataset $(DATASET) $(COUNTERFACTUAL_ARGS)

bench: $(INSTALLED)  ## Speed and memory table + runs/bench/<time>.json (QUICK=1: tiny sizes; REF=DIR: the reference CycleGAN beside ours).
	$(CXR) perf bench $(if $(filter 1,$(QUICK)),--quick) $(if $(BACKBONES),--backbones $(BACKBONES)) \
	  $(if $(REF),--reference $(REF))

precision-check: corpus  ## CycleGAN in fp32 and bf16 over 3 seeds (CPU profile): runs/precision/cpu/table.md; PRECISION_ARGS.
	$(CXR) study precision $(PRECISION_ARGS)

clean:  ## Remove caches and build files; runs/ and data/synthetic/ only with FORCE=1.
	rm -rf .cache build *.egg-info .pytest_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
	@if [ "$(FORCE)" = 1 ]; then rm -rf $(RUNS) data/synthetic; echo "removed $(RUNS)/ and data/synthetic/"; \
	else echo "kept runs/ and data/synthetic/ (make clean FORCE=1 deletes them)"; fi

reproduce: corpus  ## A paper under its own protocol, then audited: PAPER=zebin2020|makris2020|luiz, REPRODUCE_PROFILE=cpu|paper, REPRODUCE_ARGS.
	@test -n "$(PAPER)" || { echo "usage: make reproduce PAPER=zebin2020|makris2020|luiz [REPRODUCE_PROFILE=paper]" >&2; exit 2; }
	$(CXR) study reproduce --paper $(PAPER) --profile $(REPRODUCE_PROFILE) $(REPRODUCE_ARGS)

choose-backbone: corpus  ## The study that made EfficientNet-Lite0 (ImageNet) the cpu profile's classifier: 2 candidates x 3 seeds, by a rule written first: runs/choose-backbone/choice.md.
	$(CXR) study choose-backbone $(CHOOSE_BACKBONE_ARGS)

export: $(INSTALLED)  ## A finished run as ONNX + safetensors with its model card: RUN=runs/classify/<name>, EXPORT_ARGS (--out, --format).
	@test -n "$(RUN)" || { echo "usage: make export RUN=runs/classify/<name> [EXPORT_ARGS='--out DIR']" >&2; exit 2; }
	$(CXR) classify export --run $(RUN) $(EXPORT_ARGS)

evaluate: $(INSTALLED)  ## A finished classifier run on labelled data: RUN=runs/classify/<name> DATA=<class folders or manifest CSV>, EVAL_ARGS.
	@test -n "$(RUN)" -a -n "$(DATA)" || { echo "usage: make evaluate RUN=runs/classify/<name> DATA=<folder by class | manifest.csv> [EVAL_ARGS=--split test]" >&2; exit 2; }
	$(CXR) classify evaluate --run $(RUN) $(DATA) $(EVAL_ARGS)

shortcut-proof: corpus  ## The shortcut-proof table: make counterfactual, gan-train, synth, then 8 variants x 3 seeds (+ controls): runs/mitigations/shortcut-proof/table.md.
	test -f data/counterfactual/cpu/manifest.csv || $(CXR) experiment counterfactual --dataset cxr3
	test -f data/synthetic/cpu/manifest.csv || { $(CXR) gan train --profile cpu --dataset cxr3 --out $(RUNS)/gan/cpu --quiet \
	  && $(CXR) gan synth --n 100 --run $(RUNS)/gan/cpu --quiet; }
	$(CXR) study mitigations --name shortcut-proof --variants $(SHORTCUT_VARIANTS) $(MITIGATION_ARGS)

gan-variants: corpus  ## CycleGAN settings by realism (3 variants x 2 seeds, 100 images each): runs/gan-variants/cpu/table.md.
	$(CXR) study gan-variants $(GAN_VARIANT_ARGS)

choose-v3: corpus  ## Choose v3's images per label and the adversary weight on validation (grid x 3 seeds): runs/mitigations/shortcut-proof/choice.md.
	test -f data/counterfactual/cpu/manifest.csv || $(CXR) experiment counterfactual --dataset cxr3
	$(CXR) study choose-v3 $(CHOICE_ARGS)

mitigations: corpus  ## Measure the shortcut mitigations over seeds: runs/mitigations/demo/table.md (24 runs, about 100 s each on 2 free cores).
	$(CXR) study mitigations $(MITIGATION_ARGS)

serve: $(INSTALLED)  ## Web page for live testing of a finished run at http://127.0.0.1:8000: RUN=runs/classify/<name>, SERVE_ARGS.
	@test -n "$(RUN)" || { echo "usage: make serve RUN=runs/compare/demo/classify/seed0-v1 [SERVE_ARGS='--port 8001']" >&2; exit 2; }
	$(CXR) classify serve --run $(RUN) $(SERVE_ARGS)

gate-check: corpus  ## Measure the input quality gate (false flags on real CXRs, detections on non-CXR images); DATASET.
	$(CXR) classify gate-check --dataset $(DATASET)

load-test: $(INSTALLED)  ## 200 uploads, 8 at a time, to a served RUN; checks every answer and the server's memory.
	@test -n "$(RUN)" || { echo "usage: make load-test RUN=runs/compare/demo/classify/seed0-v1" >&2; exit 2; }
	$(CXR) classify load-test --run $(RUN)
