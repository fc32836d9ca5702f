# Two entry points (see README): `make demo` runs the service on the bundled clip,
# `make test` runs the test suite. Both set themselves up on a fresh machine.
.PHONY: setup test demo lint

setup:
	./scripts/setup.sh

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -q

demo: setup
	.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check .
