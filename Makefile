# Developer entry points. Each target installs what it needs first, once:
# the virtualenv, the package with its dev extras (again only when
# pyproject.toml changes), and the Kafka broker jars (cached by node.devkafka).
#
#   make test    all tests, against a real local Kafka broker
#   make demo    the end-to-end demo
#   make lint    ruff check, ruff format --check, strict mypy (node, tests, bench)
#   make bench   benchmarks
#   make vendor-charts   refresh the folder's vendored chart library from npm

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.corredor-installed
# e.g. make test PYTEST_ARGS="tests/test_devkafka.py -x"
PYTEST_ARGS ?=

.PHONY: test demo lint bench jars install vendor-charts

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-run pip only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# Cheap when cached (checks java and a marker file); Maven runs only once.
jars: $(STAMP)
	$(PY) -m node.devkafka fetch

test: $(STAMP) jars
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP) jars
	$(VENV)/bin/corredor demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy node tests bench

bench: $(STAMP) jars
	$(PY) -m bench
	# Sections added to what bench wrote: DP beside suppression, and the demo's coverage.
	$(PY) -m bench.privacy_utility
	$(PY) -m bench.coverage

# The folder's chart library (vega, vega-lite, vega-embed, vega-interpreter)
# from npm into node/folder/static/vendor/ with licences; the result is committed.
vendor-charts:
	python3 deploy/vendor_charts.py
