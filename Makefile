# Two commands do all the set-up on a fresh clone:
#   make app    installs what is needed and starts the dashboard on the shipped model
#               (http://localhost:8501; another port: make app PORT=8600)
#   make test   installs what is needed and runs the tests
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: app test venv system-packages benchmark lint

# constraints.txt pins every package to the version the suite last passed with.
$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt -c constraints.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT)

# The upload test drives Debian's chromium and the report test renders PDFs with
# poppler's pdftoppm; install them when we are allowed to.
system-packages:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium poppler-utils >/dev/null; \
	  else echo "please install chromium and poppler-utils (apt-get install ...)"; fi; fi

test: $(STAMP) system-packages
	$(VENV)/bin/pytest -q

benchmark: $(STAMP)
	$(PY) benchmarks/inference.py

# The whole tree (dashboard/ and scripts/ too); .ci/run runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
