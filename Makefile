# Two entry points (see README): `make demo` runs the service on the bundled clip,
# `make test` runs the test suite. Both set themselves up on a fresh machine.
.PHONY: setup test test-ffmpeg demo lint

setup:
	./scripts/setup.sh

test: setup
	.venv/bin/ruff check .
	# One worker per core (at most 4), whole files per worker so module fixtures (servers,
	# models) are built once; half the suite waits on subprocesses, so 2 cores give ~1.4x.
	.venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

# The media tests under the oldest and the newest supported ffmpeg (Debian 12's 5.1, the wheel's).
test-ffmpeg: setup
	./scripts/test_ffmpeg_versions.sh

demo: setup
	.venv/bin/python -m scripts.demo

lint: setup
	.venv/bin/ruff check .
