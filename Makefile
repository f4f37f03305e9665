# One command per job; each creates or refreshes .venv on its own.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp
JOBS   ?= 2

.PHONY: setup demo test test-fast bench lint clean

setup: $(STAMP)

STUBS_VERSION := 1.29.0.post1

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# ESP32 API stubs in a folder of their own: they would shadow CPython's typeshed in site-packages
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade --target $(VENV)/esp32-stubs \
		micropython-esp32-stubs==$(STUBS_VERSION)
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/loraspot demo

test: setup
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup

test-fast: setup
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"

bench: setup
	$(PY) bench/run.py
	$(PY) bench/radio.py
	$(PY) bench/lorawan.py
	$(PY) bench/node.py
	$(PY) bench/hotspot.py
	$(PY) bench/flash.py
	$(PY) bench/provision.py
	$(PY) bench/monitor.py

lint: setup
	$(VENV)/bin/ruff check firmware host tests bench
	$(VENV)/bin/pyright -p pyrightconfig.json

clean:
	rm -rf $(VENV) build *.egg-info host/*.egg-info .pytest_cache
