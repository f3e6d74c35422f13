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

pytest:
	$(UV) run --locked pytest

bench: setup
	$(UV) run --locked python bench/run_all.py

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
