# make demo   : run the whole stack on simulated stations of every kind, with a day of history first
#               (SQLite, no services to install); `make demo SCENARIO=deploy/config/scenarios/typhoon.yaml`
#               runs a drill too
# make test   : lint, format, layer contracts, types and the whole test suite (needs PostgreSQL; see README)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# pytest-xdist workers: most tests wait on sockets, processes and a fake clock, so two share 2 cores well
# (786 tests: 662 s alone, 433 s with 2 workers on this machine)
TEST_WORKERS ?= 2

.PHONY: demo demo-city test lint format check-config clean fuzz bench soak foreign

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@if command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; then \
	  echo "make demo: mosquitto is installed: Minami's MQTT and Sparkplug stations too"; \
	  fleet=deploy/config/demo/full/mqtt; \
	else \
	  echo "make demo: no mosquitto: every station over Modbus (apt-get install mosquitto adds MQTT and Sparkplug ones)"; \
	  fleet=deploy/config/demo/full; \
	fi; \
	$(BIN)/pumpwatch demo --fleet $$fleet $(if $(SCENARIO),--scenario $(SCENARIO))

# the seed city's whole fleet (216 stations, Modbus + MQTT); needs mosquitto installed
demo-city: $(STAMP)
	$(BIN)/pumpwatch demo --fleet deploy/config/city --db sqlite:///var/city.db

# lint, the format, the layer contracts (docs/architecture.md), the types (mypy, [tool.mypy]), then the tests
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m tests.foreign.venv || echo "make: pysparkplug's venv not built; its test skips (fails under CI)"
	$(BIN)/pytest -n $(TEST_WORKERS)

# the foreign Sparkplug B edge node's own venv (pysparkplug pins paho-mqtt < 2): tests/foreign/venv.py
foreign: $(STAMP)
	$(BIN)/python -m tests.foreign.venv

# hostile input with many more examples than `make test`: Modbus responses, MQTT payloads, every API route
# (hostile values one part at a time, on SQLite and PostgreSQL), the API spec (schemathesis)
fuzz: $(STAMP)
	PUMPWATCH_FUZZ_EXAMPLES=2000 PUMPWATCH_API_FUZZ_EXAMPLES=100 PUMPWATCH_SCHEMATHESIS_EXAMPLES=100 \
		$(BIN)/pytest -p no:cacheprovider --timeout 3600 \
		tests/security/test_fuzz.py tests/security/test_hostile_fuzz.py tests/security/test_schemathesis.py

# fleets of 200 to 20,000 simulated stations, ingest, alarms, API, trends and a month's operation reports of
# the city (216 stations) against floors and goals measured in the
# same run (~10 min; needs PostgreSQL on 127.0.0.1:5432, or PUMPWATCH_BENCH_PG); writes bench/results/
bench: $(STAMP)
	$(BIN)/python -m bench.run

# long runs: a 15-minute (simulated) database outage at 1 Hz, the collector shards, 20 SIGKILLs under load,
# the nemesis for 30 min (PUMPWATCH_NEMESIS_S seconds), the console's overview with 10,000 stations
soak: $(STAMP)
	PUMPWATCH_SOAK_OUTAGE_S=900 PUMPWATCH_SOAK_KILLS=20 PUMPWATCH_NEMESIS_S=$${PUMPWATCH_NEMESIS_S:-1800} \
		PUMPWATCH_CONSOLE_STATIONS=10000 $(BIN)/pytest -q -s --timeout 3600 \
		tests/historian/test_outage.py tests/scale tests/browser/test_scale.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-config: $(STAMP)
	$(BIN)/pumpwatch check-config deploy/config/demo

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
