# The two commands of the README: `make run` (the demo on the embedded local stack) and
# `make test` (the whole suite). Both create .venv and install exactly requirements.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test check bench clean

$(BIN)/riskstream: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $@

install: $(BIN)/riskstream

run: install
	$(BIN)/riskstream demo

test: install
	$(BIN)/pytest

check: install
	scripts/check

bench: install
	@command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk
	$(BIN)/python -m bench

clean:
	-$(BIN)/riskstream stack down
	rm -rf .riskstream
