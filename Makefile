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

HVD := $(BIN)/horovodrun -np $(NP) -H localhost:$(NP)

# demo: held-out simulated events (never trained on), the real TrackML data, the shards the GNN trains on
DEMO_TEST ?= data/demo/test
TRACKML ?= ../shared/trackml
DEMO_FILTERED ?= data/demo/shards-filtered

demo: setup  ## the whole chain on the embedded default: simulate, build, train, infer and evaluate (sim + real event 1000)
	$(BIN)/trkx-info
	$(BIN)/trkx-simulate --config $(CONFIG) --quiet
	$(BIN)/trkx-simulate --config $(CONFIG) --quiet --events 2 --first-event 100 --out $(DEMO_TEST)
	$(BIN)/trkx-build --config $(CONFIG) --no-progress
	$(HVD) $(BIN)/trkx-train --config $(CONFIG) --set train.model=filter --set run.name=demo-filter
	$(BIN)/trkx-build --config $(CONFIG) --no-progress --filter-ckpt runs/demo-filter/checkpoints \
	    --module-map data/demo/shards/module_map.npz --out $(DEMO_FILTERED)
	$(HVD) $(BIN)/trkx-train --config $(CONFIG) --set train.model=gnn --set run.name=demo-gnn \
	    --set data.shards_dir=$(DEMO_FILTERED)
	$(BIN)/trkx-infer --config $(CONFIG) --no-progress --input $(DEMO_TEST) --out runs/demo-infer/sim
	$(BIN)/trkx-eval --config $(CONFIG) --no-progress --input $(DEMO_TEST) --submissions runs/demo-infer/sim \
	    --out runs/demo-eval/sim
	$(BIN)/trkx-infer --config $(CONFIG) --no-progress --input $(TRACKML) --events 1000 --out runs/demo-infer/event1000
	$(BIN)/trkx-eval --config $(CONFIG) --no-progress --input $(TRACKML) --events 1000 \
	    --submissions runs/demo-infer/event1000 --out runs/demo-eval/event1000
	@echo "TensorBoard: tensorboard --logdir runs/  (runs/demo-filter/tensorboard, runs/demo-gnn/tensorboard)"
	@echo "plots: runs/demo-eval/{sim,event1000}/plots/efficiency_vs_{pt,eta}.png"
	@echo "metrics: runs/demo-eval/{sim,event1000}/metrics.json; timings: runs/demo-infer/{sim,event1000}/timings.json"

test: setup  ## the whole test suite, multi-process tests included
	$(BIN)/python -m pytest -q -ra

test-fast: setup  ## everything but the multi-process and slow tests
	$(BIN)/python -m pytest -q -ra -m "not multiproc and not slow"

lock: setup  ## regenerate constraints.txt from the current environment
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^horovod=='; \
	  echo "setuptools==$$($(BIN)/python -c 'import setuptools; print(setuptools.__version__)')"; \
	  echo "horovod==0.28.1"; } > constraints.txt.new && mv constraints.txt.new constraints.txt
