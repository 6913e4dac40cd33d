# The two commands a newcomer needs:  make demo  and  make test  (both set everything up first).
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
NP ?= 2
CONFIG ?= configs/demo.yaml
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test test-fast lock clean-demo

setup:  ## install apt packages, the pinned venv, Horovod (cached wheel) and trkx_tf
	bash scripts/setup.sh


TRACKML ?= ../shared/trackml
RELEASE ?= sim200-real

demo: setup  ## the whole chain on the embedded default as cached pipeline stages, then the best released model on event 1000
	$(BIN)/trkx-info
	$(BIN)/trkx-pipeline run --config $(CONFIG) --no-progress --set pipeline.np=$(NP)
	@echo "== the released model $(RELEASE) (models/$(RELEASE), no training) on the real test event 1000 =="
	$(BIN)/trkx-infer --model $(RELEASE) --no-progress --input $(TRACKML) --events 1000 --out runs/demo-release/infer
	$(BIN)/trkx-eval --no-progress --input $(TRACKML) --events 1000 --submissions runs/demo-release/infer \
	    --out runs/demo-release/eval
	@echo "record: runs/demo/pipeline.json (each stage's command, wall time, output hashes); a second make demo does nothing"
	@echo "metrics and plots: runs/demo/eval/{sim,event1000}/metrics.json, plots/; TensorBoard: tensorboard --logdir runs/"

test: setup  ## the whole test suite, multi-process tests included
	$(BIN)/python -m pytest -q -ra

test-fast: setup  ## everything but the multi-process and slow tests
	$(BIN)/python -m pytest -q -ra -m "not multiproc and not slow"

lock: setup  ## regenerate constraints.txt from the current environment
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^horovod=='; \
	  echo "setuptools==$$($(BIN)/python -c 'import setuptools; print(setuptools.__version__)')"; \
	  echo "horovod==0.28.1"; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean-demo:  ## remove what make demo made (its data, run folders and pipeline record)
	rm -rf data/demo runs/demo runs/demo-filter runs/demo-gnn runs/demo-release
