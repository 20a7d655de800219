# The two commands of the README. Both set up .venv first (quick when already done).
.PHONY: run test setup

# Set up, then run the main job on the small local default.
run:
	@bash scripts/setup.sh
	@bash scripts/main_job.sh

# Set up with the test tools (and Horovod), then run the test suite.
test:
	@bash scripts/setup.sh --tests
	@.venv/bin/python -m pytest -q tests

setup:
	@bash scripts/setup.sh --tests
