# The two commands of the README, plus benchmarks. Each runs scripts/setup.sh first, which
# installs whatever is missing (Debian packages, uv, the locked Python dependencies).
UV = $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)

.PHONY: setup demo test lint typecheck pytest test-conformance-selftest bench clean

setup:
	@scripts/setup.sh

demo: setup
	$(UV) run --locked camgate demo --out demo-out

test: setup lint typecheck pytest

lint:
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck:
	$(UV) run --locked mypy

# The conformance suite's tests run in a process of their own: the suite watches every outbound
# connection and every thread of its process, so leftovers of other tests must not be there.
# Its self-test against deliberately broken adapters (a whole suite run per adapter) runs each
# suite in a subprocess, four at a time; `make test-conformance-selftest` runs only those.
SELFTEST = conformance/tests/test_broken_adapters.py conformance/tests/test_broken_onvif.py

# pytest applies --ignore only while recursing, never to testpaths, so the first process gets
# its folders by name (every plugin's tests but the adapter template's, which its own test runs).
MAIN_TESTS = tests core/tests server/tests $(filter-out plugins/_template/%,$(wildcard plugins/*/tests))

# The first process spreads its test files over one worker per core (pytest-xdist): most tests
# wait on servers, subprocesses and media, so two workers on two cores take about 17 minutes
# where one took 21. A file stays on one worker (--dist loadfile), so its module fixtures (RTSP
# servers, PostgreSQL) start once.
pytest:
	$(UV) run --locked pytest -n auto --dist loadfile $(MAIN_TESTS)
	$(UV) run --locked pytest conformance/tests

test-conformance-selftest: setup
	$(UV) run --locked pytest $(SELFTEST)

bench: setup
	$(UV) run --locked python bench/run_all.py

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
