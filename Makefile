# Set-up and entry points. `make run` and `make test` create the environment
# from the pinned requirements on first use (Python 3.11 and nothing else needed).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE_ARGS ?=
PIP_QUIET ?= -q
# pytest-xdist workers for make test: one per core, at most 4 (make test TEST_WORKERS=0: in this process).
TEST_WORKERS ?= auto

# A comma inside $(if ...) arguments.
comma := ,

.PHONY: run config monitor predict test test-fast lint benchmark benchmark-validation benchmark-training benchmark-pipeline benchmark-dvc benchmark-drift benchmark-transfer benchmark-recipes benchmark-scale benchmark-gpu benchmark-use venv venv-gpu lock clean dvc-yaml repro verify restamp slurm-profile

venv: $(VENV)/.installed

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	$(BIN)/python -m pip install $(PIP_QUIET) -r requirements/lock.txt
	$(BIN)/python -m pip install $(PIP_QUIET) --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

## The pipeline: on the demo (config/config.yaml, the embedded digits), or on your config with
## make run CONFIG=my_config.yaml (checked first: a YAML error names its line).
run: venv
	$(if $(CONFIG),$(BIN)/python -m imgclf.core.config $(CONFIG) &&) $(BIN)/snakemake --cores $(CORES) $(if $(CONFIG),--configfile $(CONFIG)) $(SNAKEMAKE_ARGS)

## A starting config from your data: make config DATA=folder-or-manifest [OUT=config/mine.yaml] [FORCE=1].
config: venv
	$(BIN)/python -m imgclf.init "$(DATA)" $(if $(OUT),--output "$(OUT)") $(if $(FORCE),--force)

## Drift report of new images against the deployed model: make monitor BATCH=folder-or-manifest [NAME=name] [CONFIG=the run's config].
monitor: venv
	@test -n "$(BATCH)" || { echo "usage: make monitor BATCH=path/to/new/images [NAME=name] (a folder: flat, or one sub-folder per class; or a CSV manifest)"; exit 2; }
	$(BIN)/snakemake --cores $(CORES) monitor report $(if $(CONFIG),--configfile $(CONFIG)) $(SNAKEMAKE_ARGS) --config 'monitor={"batches": {"$(or $(NAME),$(basename $(notdir $(abspath $(BATCH)))))": {"path": "$(BATCH)"}}}'

## Classes of new images: make predict IMAGES=folder-or-manifest [NAME=name] [MODEL=deployed|ensemble|float32|float16|int8] [CONFIG=the run's config].
predict: venv
	@test -n "$(IMAGES)" || { echo "usage: make predict IMAGES=path/to/images [NAME=name] [MODEL=deployed] (a folder: flat, or one sub-folder per class; or a CSV manifest)"; exit 2; }
	$(BIN)/snakemake --cores $(CORES) predict $(if $(CONFIG),--configfile $(CONFIG)) $(SNAKEMAKE_ARGS) --config 'predict={"batches": {"$(or $(NAME),$(basename $(notdir $(abspath $(IMAGES)))))": {"path": "$(IMAGES)"}}$(if $(MODEL),$(comma) "model": "$(MODEL)")}'

## Every test, the workflow tests included.
test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup $(PYTEST_ARGS)

## The unit tests only (no Snakemake, no cluster, no browser, no long training): under 3 minutes on 2 cores.
test-fast: venv
	$(BIN)/python -m pytest -m "not workflow and not slow" $(PYTEST_ARGS)

## Snakemake's linter and a dry run of the default target.
lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakemake -n --quiet

## The pipeline under DVC (dvc.yaml's stages call Snakemake; see docs/dvc.md).
repro: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

## Regenerate dvc.yaml from the stage registry, the workflow and config/config.yaml.
dvc-yaml: venv
	$(BIN)/python -m imgclf.dvc_pipeline

## For reviewers, after dvc pull: re-derive the manifests, re-evaluate the models (RETRAIN=42: retrain a seed).
verify: venv
	$(BIN)/python -m imgclf.verify $(if $(RETRAIN),--retrain $(RETRAIN))

## Install profiles/slurm as your `slurm` Snakemake profile (kept if you have one), for `snakemake --profile slurm`.
SNAKEMAKE_PROFILES ?= $(if $(XDG_CONFIG_HOME),$(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
slurm-profile:
	@if [ -e "$(SNAKEMAKE_PROFILES)/slurm" ]; then \
	  echo "$(SNAKEMAKE_PROFILES)/slurm exists: snakemake --profile slurm uses your site profile (profiles/slurm shows what imgclf expects)"; \
	else \
	  mkdir -p "$(SNAKEMAKE_PROFILES)" && cp -r profiles/slurm "$(SNAKEMAKE_PROFILES)/slurm" && \
	  echo "installed $(SNAKEMAKE_PROFILES)/slurm: edit its account and partition, then run: snakemake --profile slurm"; \
	fi

## After a checkout into a folder Snakemake never ran in: mark the pulled results up to date.
restamp: venv
	$(BIN)/snakemake --touch --cores 1

## Every benchmark (figures printed, and written to benchmarks/results/).
benchmark: benchmark-validation benchmark-training benchmark-pipeline benchmark-dvc benchmark-drift benchmark-transfer

## Validation throughput on the default data and ../shared/data/ham10000.
benchmark-validation: venv
	$(BIN)/python benchmarks/validation_throughput.py

## Input pipeline and loop overhead ratios; backbone epoch times on ../shared/data/malaria.
benchmark-training: venv
	$(BIN)/python benchmarks/training_benchmarks.py

## The default pipeline's wall time and stage times; tuning, final trainings and test accuracy on ../shared/data/malaria.
benchmark-pipeline: venv
	$(BIN)/python benchmarks/pipeline_benchmarks.py

## dvc repro of the default pipeline in a fresh git repository; the cost of a no-op dvc repro.
benchmark-dvc: venv
	$(BIN)/python benchmarks/dvc_benchmarks.py

## A GPU environment for clusters: TensorFlow with CUDA wheels instead of tensorflow-cpu.
venv-gpu: VENV = .venv-gpu
venv-gpu:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install $(PIP_QUIET) --upgrade pip
	grep -v -i '^tensorflow[-_]cpu==' requirements/lock.txt > $(VENV)/lock-gpu.txt
	$(VENV)/bin/python -m pip install $(PIP_QUIET) -r $(VENV)/lock-gpu.txt "tensorflow[and-cuda]==$$(grep -i '^tensorflow[-_]cpu==' requirements/lock.txt | cut -d= -f3)"
	$(VENV)/bin/python -m pip install $(PIP_QUIET) --no-deps -e .
	touch $(VENV)/.installed

## Re-resolve requirements/lock.txt from requirements/direct.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install $(PIP_QUIET) -r requirements/direct.txt
	{ echo "# Full pinned environment (CPU). Generated by: make lock"; \
	  echo "# Install: pip install -r requirements/lock.txt"; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > requirements/lock.txt
	rm -rf .venv-lock

clean:
	rm -rf results logs .snakemake benchmarks/results

## Drift calibration: false-positive rate on unshifted batches, detection rate per shift and intensity.
benchmark-drift: venv
	$(BIN)/python benchmarks/drift_benchmarks.py

## Pretrained EfficientNet-Lite0 against random initialisation, the small CNN and the tutorial recipe (issue 15).
benchmark-transfer: venv
	$(BIN)/python benchmarks/transfer_benchmarks.py

## Validation, split and the input pipeline at 1x, 4x and 16x of HAM10000's size; training threads (issue 18).
benchmark-scale: venv
	$(BIN)/python benchmarks/scale_benchmarks.py

## Using the models (issue 19): the ensemble's gain, predict's images/s, Grad-CAM border shares (after benchmark-transfer's runs).
benchmark-use: venv
	$(BIN)/python benchmarks/use_benchmarks.py

## Where a GPU is (make venv-gpu first: BIN=.venv-gpu/bin): the project's loop against a bare fit, MobileNetV3 and EfficientNet, 224x224.
benchmark-gpu:
	$(or $(wildcard .venv-gpu/bin/python),$(BIN)/python) benchmarks/gpu_benchmarks.py

## The recipes for imbalanced classes against the tutorial on HAM10000 and malaria (balanced accuracy).
benchmark-recipes: venv
	$(BIN)/python benchmarks/transfer_benchmarks.py --datasets ham10000 malaria --methods tutorial pretrained_balanced pretrained_balanced_long pretrained_balanced_160 small_cnn_balanced --skip-speedup
