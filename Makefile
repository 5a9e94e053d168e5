# The README's commands. `make test` builds everything it needs from nothing but
# python3 and the package registries, so a clean clone and CI run the same way.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MEMBERS := shared services/controller services/api services/janitor client
STAMP := $(VENV)/.installed
# The api's GraphiQL explorer files, fetched from the npm registry (services/api/explorer.txt).
EXPLORER := services/api/src/artifacts_api/graphiql/vendor/VERSIONS

.PHONY: venv test test-cluster lint fmt run bench clean

venv: $(STAMP) $(EXPLORER)

# Reinstall when a pin or a member's dependencies change; editable installs pick up code.
$(STAMP): constraints.txt requirements-dev.txt $(addsuffix /pyproject.toml,$(MEMBERS))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		$(addprefix -e ,$(MEMBERS)) -r requirements-dev.txt
	@touch $@

# Writes its stamp only once the files are there: without npm it warns, and runs again next time.
$(EXPLORER): services/api/explorer.txt services/api/fetch_explorer.py
	@$(PYTHON) services/api/fetch_explorer.py

# Workers: the tests mostly wait on their servers (S3, Redis, a browser, the dev stack), so
# three keep two cores busy; each test file stays on one worker with its module fixtures.
TEST_WORKERS ?= 3

test: $(STAMP) $(EXPLORER)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The real API server tier: kube-apiserver built from Debian's source (cached outside the
# repo after the first build, see tests/support/apiserver_build.py) on Debian's etcd.
test-cluster: $(STAMP)
	$(BIN)/python tests/support/apiserver_build.py
	$(BIN)/python -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

run: $(STAMP) $(EXPLORER)
	@$(BIN)/python devstack/run.py

# report.py states how long the whole run took and the machine's load around it.
bench: $(STAMP) $(EXPLORER)
	@set -e; started=$$(date +%s); load=$$(cut -d' ' -f1-3 /proc/loadavg); \
	for script in bench/bench_*.py; do \
		[ -e "$$script" ] || continue; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; \
	BENCH_STARTED=$$started BENCH_LOAD_BEFORE="$$load" $(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache \
		services/api/src/artifacts_api/graphiql/vendor
