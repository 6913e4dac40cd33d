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

demo: setup  ## the main job on the embedded default (simulated events on the real TrackML geometry)
	$(BIN)/trkx-info
	$(BIN)/trkx-simulate --config $(CONFIG)
	$(BIN)/trkx-build --config $(CONFIG)
	$(HVD) $(BIN)/trkx-train --config $(CONFIG) --set train.model=filter --set run.name=demo-filter
	$(HVD) $(BIN)/trkx-train --config $(CONFIG) --set train.model=gnn --set run.name=demo-gnn

test: setup  ## the whole test suite, multi-process tests included
	$(BIN)/python -m pytest -q -ra

test-fast: setup  ## everything but the multi-process and slow tests
	$(BIN)/python -m pytest -q -ra -m "not multiproc and not slow"

lock: setup  ## regenerate constraints.txt from the current environment
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^horovod=='; \
	  echo "setuptools==$$($(BIN)/python -c 'import setuptools; print(setuptools.__version__)')"; \
	  echo "horovod==0.28.1"; } > constraints.txt.new && mv constraints.txt.new constraints.txt
