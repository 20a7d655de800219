#!/usr/bin/env bash
# The experimental demonstration on the shared APS 34-ID-C scan 54:
#   prep → phase (600 iterations) → predict (NN alone) → predict --refine 50
#   → finetune (photon split: train on augmented half A, before/after on half B),
# each writing CXI + VTK + PNGs into runs/scan54/, and runs/scan54/results.json with
# χ², LLK_free and the time of each (read back from the files each step wrote).
# FINETUNE=0 skips the fine-tuning step (about 4 minutes on 2 idle cores).
set -euo pipefail
cd "$(dirname "$0")/.."
RAW=${1:-../shared/data/aps34idc-scan54/frames}
OUT=${2:-runs/scan54}
AP=.venv/bin/autophase
mkdir -p "$OUT"
$AP prep "$RAW" -o "$OUT/scan54.cxi"
$AP phase "$OUT/scan54.cxi" -o "$OUT/phasing.cxi"
$AP predict "$OUT/scan54.cxi" -o "$OUT/nn.cxi"
$AP predict "$OUT/scan54.cxi" -o "$OUT/nn_refine50.cxi" --refine 50
if [ "${FINETUNE:-1}" != 0 ]; then
    $AP finetune "$OUT/scan54.cxi" --split-photons -o "$OUT/finetune" --no-progress
fi
.venv/bin/python - "$OUT" <<'PY'
import os, sys
from autophase.io.cxi import read_cxi
out = sys.argv[1]
rows = {}
for name in ("phasing", "nn", "nn_refine50"):
    m = read_cxi(os.path.join(out, f"{name}.cxi"))["metadata"]
    secs = m.get("seconds", (m.get("seconds_nn") or 0) + (m.get("seconds_refine") or 0))
    rows[name] = {"chi2": m.get("chi2"), "llk_free": m.get("llk_free"), "seconds": secs,
                  "model_version": m.get("model_version")}
import json
rec = {"scan": "aps34idc-scan54", "methods": rows}
ft = os.path.join(out, "finetune", "results.json")
if os.environ.get("FINETUNE", "1") != "0" and os.path.exists(ft):
    r = json.load(open(ft))["details"]  # the finetune record (autophase.results): its own dict
    rec["finetune"] = {k: r[k] for k in ("holdout_kind", "config", "before", "after")}
    for tag in ("before", "after"):
        print(f"scan54 finetune {tag:6s} (held-back half): NN χ² {r[tag]['nn']['chi2']:.5g}, "
              f"NN + {r['config']['refine']} ER χ² {r[tag]['refine']['chi2']:.5g}")
from autophase.bench.record import write_record
write_record("scan54", rec, os.path.join(out, "results.json"))
for k, v in rows.items():
    print(f"scan54 {k:12s} χ² {v['chi2']:.5g}  LLK_free {v['llk_free']:.4g}  {v['seconds']:.3f} s")
PY
