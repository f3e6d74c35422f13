# The two commands of the README, plus benchmarks. Each runs scripts/setup.sh first, which
# installs whatever is missing (Debian packages, uv, the locked Python dependencies).
UV = $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)

.PHONY: setup demo test lint typecheck pytest bench clean

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
pytest:
	$(UV) run --locked pytest --ignore=conformance/tests
	$(UV) run --locked pytest conformance/tests

bench: setup
	$(UV) run --locked python bench/run_all.py

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
