#!/usr/bin/env bash
# One GPU node, one go (about 8 minutes on an H200): make training data on the CPU cores,
# benchmark inference and training on the GPU, train two candidate models of the shipped
# shape for TRAIN_MIN minutes side by side, and export both (weights only).
#
#   scripts/gpu_run.sh OUT_DIR [TRAIN_MIN]
#
# OUT_DIR receives inference-gpu.json, training-gpu.json, live-gpu.json, A.tar and B.tar (each: model.pt,
# model.json, metrics.csv, config.json, train.log) and logs.tar. Only the project's Python
# packages are needed (torch with CUDA, h5py, hdf5plugin, scipy, numba, tqdm); the checkout
# is put on PYTHONPATH, nothing is installed. Knobs (environment): PYTHON (python3),
# WORK (scratch, /tmp/autophase-gpu), NSIM simulate jobs × PER crystals (12 × 200), BENCH=0
# skips the two benchmarks, INIT=CKPT starts both candidates from those weights (the next
# lease, benchmarks already recorded, inside a 10-minute call: BENCH=0
# INIT=autophase/models/default.pt NSIM=16 PER=500 scripts/gpu_run.sh OUT 5), LIVE=0 skips
# the watch service's latency (benchmarks/bench_live.py, live-gpu.json),
# SIM_EXTRA simulate options (default --domain: sizes, shapes, defects, photons and detector
# effects randomised, docs/training.md; empty for the shipped model's data),
# SELECT the --select-on panel both candidates keep best.pt by (autophase.train.selection:
# NN + 50 ER against phasing on held-back patterns; default generator2:8:2,simulator:8:22,
# plus scan54:3 where the scan's frames are; SELECT= keeps best.pt by the validation loss),
# TRAIN_EXTRA adds train options (a CPU dry run:
# NSIM=3 PER=16 BENCH=0 TRAIN_EXTRA="--steps-per-epoch 2 --max-val 4" scripts/gpu_run.sh /tmp/o 0.01).
#
# Why independent simulate jobs rather than one `mpiexec -n 12 autophase simulate`: a
# GPU node's Python may have no MPI; `autophase train --data RUN1 RUN2 …` reads the runs
# as one dataset, and each run's seed (100 + job) fixes its crystals.
set -u
OUT=${1:?usage: scripts/gpu_run.sh OUT_DIR [TRAIN_MIN]}
MIN=${2:-4.5}
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${WORK:-/tmp/autophase-gpu}
NSIM=${NSIM:-12}
PER=${PER:-200}
# the domain-randomised simulator (issue 15) unless SIM_EXTRA says otherwise (SIM_EXTRA= : the old data)
SIM_EXTRA=${SIM_EXTRA---domain}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$W/sim"
cd "$ROOT" || exit 1
log() { echo "[$(date +%T)] $*"; }

log "gpu_run: $($PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

# 1. training data, in the background: NSIM single-process runs
for i in $(seq 0 $((NSIM - 1))); do
  # shellcheck disable=SC2086  # SIM_EXTRA is a list of options
  $PY -m autophase.cli simulate --n-crystals "$PER" --seed $((100 + i)) --out "$W/sim/s$i" --no-progress \
    $SIM_EXTRA >"$W/sim-$i.log" 2>&1 &
done

# 2. inference benchmark meanwhile (GPU-bound; the simulations leave it 4 cores)
if [ "${BENCH:-1}" != 0 ]; then
  log "bench_inference"
  $PY benchmarks/bench_inference.py --no-compile --out "$OUT/inference-gpu.json" 2>&1 | tee "$W/bench_inference.log"
fi
wait
tail -n 2 "$W"/sim-*.log | grep -h "crystals/s\|Error\|error" | head -n 24
DATA=$(ls -d "$W"/sim/s*/)
log "data: $(echo "$DATA" | wc -l) runs"

# 3. the watch service's latency on the GPU (issue 16: ≤ 50 ms at --refine 0), while the
# node is otherwise idle; LIVE=0 skips it (≈2–3 min: two services, each compiled once)
if [ "${LIVE:-1}" != 0 ]; then
  log "bench_live"
  $PY benchmarks/bench_live.py --n 5 --gap 0.3 --no-whole --no-plot --out "$OUT/live-gpu.json" 2>&1 | tee "$W/bench_live.log"
fi

# 3b. training benchmark on the simulated data (one rank per GPU)
if [ "${BENCH:-1}" != 0 ]; then
  log "bench_training"
  $PY benchmarks/bench_training.py --data "$W/sim/s0" --workers 4 --batch-size 16 --steps 20 \
    --out "$OUT/training-gpu.json" 2>&1 | tee "$W/bench_training.log"
fi

# 4. two candidates side by side (same data and width, different batch and rate).
# From scratch: the support threshold ramps 0 → 0.1 over 300 steps. With INIT=CKPT (e.g.
# the shipped model) both continue from its weights with a fresh optimiser: the full
# 0.1 threshold from the first step, lower rates (LR_A, LR_B override either).
# (4,800 patterns an epoch each; a hung loader is cut 150 s after the time limit, and the
# best checkpoint so far is exported all the same)
if [ -n "${INIT:-}" ]; then
  start=(--init "$INIT" --threshold 0.1:0.1:1)
  lr_a=${LR_A:-2.5e-4} lr_b=${LR_B:-1e-4} wu_a=20 wu_b=20
else
  start=(--threshold 0:0.1:300)
  lr_a=${LR_A:-1e-3} lr_b=${LR_B:-5e-4} wu_a=50 wu_b=100
fi
if [ -z "${SELECT+x}" ]; then  # exploration sets only: never generator 2 set 1 (issue 15's acceptance)
  SELECT="generator2:8:2,simulator:8:22"
  [ -d "${AUTOPHASE_SCAN54:-$ROOT/../shared/data/aps34idc-scan54}/frames" ] && SELECT="$SELECT,scan54:3"
fi
select=()
[ -n "$SELECT" ] && select=(--select-on "$SELECT")
common=(--width 16 --depth 4 --epochs 1000 --max-val 128 --patience 3 "${start[@]}"
        --workers 6 --time-limit "$MIN" --no-progress ${select[@]+"${select[@]}"})
cut=$(awk "BEGIN { print int($MIN * 60 + 150) }")
log "train A (lr $lr_a) and B (lr $lr_b) for $MIN min${INIT:+ from $INIT}${SELECT:+, best.pt by the panel $SELECT}"
# shellcheck disable=SC2086
timeout "$cut" $PY -m autophase.cli train --data $DATA --out "$W/A" --batch-size 16 --steps-per-epoch 300 \
  --lr "$lr_a" --warmup "$wu_a" "${common[@]}" ${TRAIN_EXTRA:-} >"$W/A.log" 2>&1 &
# shellcheck disable=SC2086
timeout "$cut" $PY -m autophase.cli train --data $DATA --out "$W/B" --batch-size 32 --steps-per-epoch 150 \
  --lr "$lr_b" --warmup "$wu_b" "${common[@]}" ${TRAIN_EXTRA:-} >"$W/B.log" 2>&1 &
wait
for r in A B; do
  tail -n 4 "$W/$r.log"
  if [ -f "$W/$r/best.pt" ]; then
    $PY -m autophase.model.export "$W/$r/best.pt" --dest "$W/$r/model.pt" >/dev/null &&
      cp "$W/$r.log" "$W/$r/train.log" &&
      tar cf "$OUT/$r.tar" -C "$W/$r" model.pt model.json metrics.csv config.json train.log
  fi
done
tar cf "$OUT/logs.tar" -C "$W" $(cd "$W" && ls ./*.log)
log "gpu_run: done"
ls -la "$OUT"
