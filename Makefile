# Two entry points (see README): `make demo` runs the service on the bundled clip,
# `make test` runs the test suite. Both set themselves up on a fresh machine.
.PHONY: setup test demo lint

setup:
	./scripts/setup.sh

test: setup
	.venv/bin/ruff check .
	# One worker per core (at most 4), whole files per worker so module fixtures (servers,
	# models) are built once; half the suite waits on subprocesses, so 2 cores give ~1.4x.
	.venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

demo: setup
	.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check .
