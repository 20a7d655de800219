#!/usr/bin/env bash
# The main job on the small local default: the whole workflow graph on this machine
# (jobs/local.toml: 64 small crystals on 2 MPI ranks, a 2-rank DDP training for a few
# epochs, evaluation, quick benchmarks, the report). Re-running reuses finished stages.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/autophase workflow --config jobs/local.toml "$@"
