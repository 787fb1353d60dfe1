# The two commands of the README: `make demo` (the main job) and `make test`.
# Both create .venv/ on first use.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint install clean compose-smoke

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mar demo

# Tests marked slow (every torchvision builder beyond one per family, a 100-step training run)
# run in `make test-all`: run it before changing mar_core/models, the engine or the distillers.
test: $(STAMP) lint
	@# pytest exits 5 when it collected no test: that is a failure, never a pass.
	$(VENV)/bin/python -m pytest -q -ra --durations=30 -m 'not slow' $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'make test: no test ran' >&2; exit 1; fi; exit $$rc

test-all: $(STAMP) lint
	$(VENV)/bin/python -m pytest -q -ra --durations=30 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'make test-all: no test ran' >&2; exit 1; fi; exit $$rc

# The package graph (import-linter contracts in pyproject.toml) and ruff's lint and format rules.
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The real stack in Docker (images built, `docker-compose up`, jobs through the containers): run
# before a change to docker/ or a compose file lands. Root, minutes; not part of `make test`.
compose-smoke:
	python3 scripts/compose_smoke.py

clean:
	rm -rf $(VENV) .pytest_cache
