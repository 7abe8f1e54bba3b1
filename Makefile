# The two entry points: `make demo` (set up + main job) and `make test` (set up + tests).
# Both work on a fresh machine with only python3, pip and gcc.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo-data

.PHONY: demo test install clean bench

# libjpeg-turbo's headers let the editable install build the native JPEG region decoder (setup.py);
# without them everything still installs and decodes with Pillow. apt-get only as root, best effort.
JPEG_H ?= /usr/include/jpeglib.h

$(STAMP): pyproject.toml setup.py imagenet_stream/streaming/_jpegroi.c
	@[ -f $(JPEG_H) ] || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjpeg-dev) >/dev/null 2>&1; } || \
	  echo "note: libjpeg-dev not installed; building without the native JPEG region decoder (Pillow decodes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pin the CPU build that is on this disk first, so the `torch>=2.2` range never pulls a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/imagenet-stream demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info imagenet_stream/streaming/_jpegroi*.so
