# Two entry points (see README): `make demo` and `make test`.
# Both create .venv and install hand25d into it on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: demo test bazel-test clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

bazel-test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bazel test //...

demo: $(STAMP)
	@echo "== hand25d demo: outputs in $(DEMO)/"

clean:
	rm -rf $(DEMO) .bazel
