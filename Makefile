# make demo   : run the whole stack on simulated stations (SQLite, no services to install)
# make test   : lint and the whole test suite (needs PostgreSQL; see README)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo demo-city test lint format check-config clean fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pumpwatch demo

# the seed city's whole fleet (216 stations, Modbus + MQTT); needs mosquitto installed
demo-city: $(STAMP)
	$(BIN)/pumpwatch demo --fleet deploy/config/city --db sqlite:///var/city.db

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

# hostile input with many more examples than `make test`: Modbus responses, MQTT payloads, the API spec
fuzz: $(STAMP)
	PUMPWATCH_FUZZ_EXAMPLES=2000 PUMPWATCH_SCHEMATHESIS_EXAMPLES=100 $(BIN)/pytest -p no:cacheprovider \
		tests/security/test_fuzz.py tests/security/test_schemathesis.py --timeout 3600

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check-config: $(STAMP)
	$(BIN)/pumpwatch check-config deploy/config/demo

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
