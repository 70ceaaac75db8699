# Two commands set everything up on a fresh machine (Python 3.11, Java 17):
#   make run    venv + installs, start the embedded services, ingest the demo window through luigid
#   make test   venv + installs, unit tests, integration tests against real services on test ports
# Both are safe to run twice.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
ARGS   ?=
PYTEST_ARGS ?=
# pytest workers (tests/conftest.py deals whole stacks out to them)
TEST_WORKERS ?= 2

.PHONY: dashboard run test setup lock services-start services-stop services-status stop status lint bench bench-backfill bench-marts bench-dashboard bench-simulate bench-floor clean

$(VENV)/.installed: setup.cfg pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q pip==26.3
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# after changing setup.cfg: resolve again with uv (keeping the locked versions that still fit), with every file's
# hash, the dev and cluster extras and the build backend pyproject.toml pins
lock: setup
	$(VENV)/bin/pip install -q uv==0.13.10
	cp requirements.lock requirements.lock.new
	sed -n 's/^requires = \["\(setuptools==[^"]*\)"\].*/\1/p' pyproject.toml \
	  | $(VENV)/bin/uv pip compile setup.cfg - --extra dev --extra cluster --generate-hashes --python-version 3.11 \
	      --no-header --quiet -o requirements.lock.new
	{ sed -n '1,2p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm requirements.lock.new

setup: $(VENV)/.installed

run: setup
	$(PY) -m pipeline run $(ARGS)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

dashboard: setup
	$(PY) -m streamlit run dashboard/app.py

stop: setup
	$(PY) -m pipeline services stop

status: setup
	$(PY) -m pipeline services status

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench $(ARGS)

bench-backfill: setup
	$(PY) -m bench.backfill $(ARGS)

bench-marts: setup
	$(PY) -m bench.marts $(ARGS)

bench-dashboard: setup
	$(PY) -m bench.dashboard $(ARGS)

bench-simulate: setup
	$(PY) -m bench.simulate $(ARGS)

bench-floor: setup
	$(PY) -m bench.floor $(ARGS)

clean:
	-$(PY) -m pipeline services stop
	rm -rf var
