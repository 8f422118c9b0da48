# Two commands do everything on a fresh machine:
#   make run    set up .venv, run the pipeline on the embedded default data, print recommendations
#   make test   set up .venv and run the whole test suite (unit + e2e)
VENV ?= .venv
PY := $(VENV)/bin/python
OUTPUT ?= output
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run test test-fast lint clean

setup:
	@bash scripts/setup_venv.sh

run: setup
	$(VENV)/bin/recsys run --output $(OUTPUT)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not e2e"

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(OUTPUT) .pytest_cache
