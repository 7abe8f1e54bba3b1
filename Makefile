# The two entry points: `make demo` (set up + main job) and `make test` (set up + tests).
# Both work on a fresh machine with only python3, pip and gcc.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-data

CROSSCHECK := .cache/crosscheck
TIMM_VERSION ?= 1.0.31

.PHONY: demo test test-cluster install clean bench crosscheck-data bench-peers

# libjpeg-turbo's headers let the editable install build the native JPEG region decoder (setup.py);
# without them everything still installs and decodes with Pillow. apt-get only as root, best effort.
JPEG_H ?= /usr/include/jpeglib.h

$(STAMP): pyproject.toml constraints.txt setup.py imagenet_stream/streaming/decoding/_jpegroi.c
	@[ -f $(JPEG_H) ] || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjpeg-dev) >/dev/null 2>&1; } || \
	  echo "note: libjpeg-dev not installed; building without the native JPEG region decoder (Pillow decodes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pin the CPU build that is on this disk first, so the `torch>=2.2` range never pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/imagenet-stream demo --out $(DEMO_OUT)

# The sources the hierarchy cross-check tests compare the shipped data with: WordNet 3.0 (Debian's
# wordnet-base, installed where apt-get runs as root) and timm's synset lists (its wheel, no deps).
crosscheck-data: $(STAMP)
	@[ -f /usr/share/wordnet/data.noun ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base) >/dev/null 2>&1; } || \
		echo "note: WordNet 3.0 not installed (apt-get install wordnet-base); its cross-check will skip"
	@ls $(CROSSCHECK)/timm-*.whl >/dev/null 2>&1 || $(PY) -m pip download --quiet --no-deps \
		--only-binary=:all: -d $(CROSSCHECK) timm==$(TIMM_VERSION) || \
		echo "note: could not download the timm wheel; the class-list cross-checks will skip"

# The cluster tests (torchrun elastic, Lightning DDP, a multi-node Ray cluster) run after the rest.
test: $(STAMP) crosscheck-data
	$(PY) -m pytest -q -m "not cluster"
	$(PY) -m pytest -q -m cluster

test-cluster: $(STAMP)
	$(PY) -m pytest -q -m cluster

bench: $(STAMP)
	$(PY) benchmarks/run.py

# The benchmark with LitData and MosaicML streaming beside the others. They need their own venv: PyPI's
# torchvision (`import streaming` loads it) needs a CUDA torch build (it runs on CPU; ~5.5 GB), and the
# main venv keeps its CPU torch. Never part of `make test` or CI. Pins: benchmarks/peers-constraints.txt.
# The project is installed there too (editable); the harness also puts this checkout first on its path.
PEERS_VENV ?= .venv-peers
PEERS_PINS := benchmarks/peers-constraints.txt
BENCH_ARGS ?=
bench-peers: $(STAMP)
	@[ $(PEERS_VENV)/.installed -nt $(PEERS_PINS) ] && [ $(PEERS_VENV)/.installed -nt pyproject.toml ] || { \
	  $(PYTHON) -m venv $(PEERS_VENV) && \
	  $(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip && \
	  $(PEERS_VENV)/bin/python -m pip install --quiet -c $(PEERS_PINS) \
	    torch torchvision litdata mosaicml-streaming -e . && \
	  touch $(PEERS_VENV)/.installed; }
	$(PY) benchmarks/run.py --peers-python $(PEERS_VENV)/bin/python $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info .cache imagenet_stream/streaming/decoding/_jpegroi*.so
