#!/usr/bin/env bash
# Build Horovod 0.28.1 against the installed torch (>= 2.1 needs C++17) and cache the wheel.
#
# Horovod's last release hard-codes C++14; torch >= 2.1 headers need C++17
# (horovod issues #3996/#4014, fixed on master only by PR #3998). We patch the two
# CMakeLists files of the sdist, build once (~6 min on 2 cores) and keep the wheel in
# $AUTOPHASE_WHEEL_CACHE (default ~/.cache/autophase/wheels) so later set-ups are instant.
#
# Usage: scripts/build_horovod.sh PYTHON   (the interpreter of the target venv)
set -euo pipefail
PY=${1:-python}
VERSION=0.28.1
CACHE=${AUTOPHASE_WHEEL_CACHE:-$HOME/.cache/autophase/wheels}
TORCH_VER=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
PYTAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
# The wheel is ABI-bound to the torch it was compiled against: key the cache on it.
KEY="torch${TORCH_VER}-${PYTAG}"
mkdir -p "$CACHE/$KEY"

if "$PY" -c 'import horovod.torch' 2>/dev/null; then
  echo "horovod: already installed in $("$PY" -c 'import sys; print(sys.prefix)')"
  exit 0
fi

whl=$(ls "$CACHE/$KEY"/horovod-${VERSION}-*.whl 2>/dev/null | head -1 || true)
if [ -z "$whl" ]; then
  echo "horovod: building ${VERSION} for ${KEY} (about 6 minutes) ..."
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PY" -m pip download --no-deps --no-binary :all: -d "$work" "horovod==${VERSION}" -q
  tar -xzf "$work"/horovod-${VERSION}.tar.gz -C "$work"
  src="$work/horovod-${VERSION}"
  for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
    # Replace any C++ standard setting with 17, and make sure one is set at all.
    sed -i -E 's/CMAKE_CXX_STANDARD[[:space:]]+1[14]/CMAKE_CXX_STANDARD 17/g; s/-std=c\+\+1[14]/-std=c++17/g' "$f"
    grep -q 'CMAKE_CXX_STANDARD 17' "$f" || sed -i '1i set(CMAKE_CXX_STANDARD 17)' "$f"
  done
  "$PY" -m pip install -q cmake 'packaging' 'cloudpickle' 'psutil' 'pyyaml'
  export CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
         HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
         MAKEFLAGS="-j$(nproc)" HOROVOD_BUILD_ARCH_FLAGS="${HOROVOD_BUILD_ARCH_FLAGS:-}"
  # mpicc/mpicxx of the mpich wheel live in the venv's bin.
  export PATH="$(dirname "$PY"):$PATH"
  "$PY" -m pip wheel --no-build-isolation --no-deps -w "$CACHE/$KEY" "$src"
  whl=$(ls "$CACHE/$KEY"/horovod-${VERSION}-*.whl | head -1)
fi
"$PY" -m pip install -q --no-deps "$whl"
"$PY" -m pip install -q cloudpickle psutil pyyaml packaging
"$PY" -c 'import horovod, horovod.torch as hvd; print("horovod", horovod.__version__, "mpi", hvd.mpi_built(), "gloo", hvd.gloo_built())'
