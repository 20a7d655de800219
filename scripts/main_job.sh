#!/usr/bin/env bash
# The main job on a small local default: phase the bundled synthetic pattern.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/demo
mkdir -p "$out"
.venv/bin/autophase phase autophase/data/demo_pattern.npz -o "$out/demo.npz"
echo "main job: results in $out/ (demo.npz, demo.png)"
