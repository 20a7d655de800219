"""Re-run the shipped model's held-out evaluation with both truth alignments, side by side.

Issue 14: the truth metrics used to align whole-voxel shifts only. This script runs the
project's own :func:`autophase.evaluate.evaluate` (the same code as ``autophase evaluate``,
same defaults, same timings) and, for every answer it scores (nn, refine, phasing, sphere),
also records the complex error, phase error and SSIM under the old whole-voxel alignment
(``align_to(..., upsample=1)``) next to the sub-voxel ones the evaluation now reports.
Both come from the same reconstructions, so their difference is the metric's alone.

    autophase simulate --n-crystals 100 --out runs/heldout14 --seed 14
    nice python benchmarks/remeasure_alignment.py --data runs/heldout14 --n 100 \\
        --out benchmarks/results/heldout14-subvoxel.json

The output is evaluate's results dict (``summary``, ``crystals``) plus ``whole_voxel``:
the same summary computed from the whole-voxel figures, and per crystal and answer a
``whole_voxel`` sub-dict. Timings are evaluate's (the extra scoring is outside them).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from autophase import evaluate as ev
from autophase.physics.metrics import align_to, phase_error, ssim_in_box


def whole_voxel(obj: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """compare_to_truth's figures under whole-voxel alignment (the metric before issue 14)."""
    al = align_to(obj, truth, upsample=1)
    t = np.asarray(truth, np.complex128)
    return {"complex_error": float(np.linalg.norm(al.aligned - t) ** 2 / np.linalg.norm(t) ** 2),
            "phase_error_rad": phase_error(obj, truth, alignment=al),
            "ssim_box": ssim_in_box(obj, truth, alignment=al)}


def summarise_partial(path: str | Path) -> dict:
    """Paired medians (sub-voxel vs whole-voxel) from a ``.partial.jsonl`` of complete crystals."""
    lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
    by: dict[int, dict] = {}
    for r in lines:
        by.setdefault(r["crystal"], {})[r["method"]] = r
    done = [c for c in by.values() if len(c) == len(ev.METHODS)]
    out: dict = {"n_complete": len(done), "methods": {}}
    for m in ev.METHODS:
        out["methods"][m] = {k: {"subvoxel_median": float(np.median([c[m][k] for c in done])),
                                 "whole_voxel_median": float(np.median([c[m]["whole_voxel"][k] for c in done]))}
                             for k in ("complex_error", "phase_error_rad", "ssim_box")} if done else {}
    if done:
        for key, f in (("subvoxel", lambda c, m: c[m]["phase_error_rad"]),
                       ("whole_voxel", lambda c, m: c[m]["whole_voxel"]["phase_error_rad"])):
            out[f"median_phase_error_ratio_refine_over_phasing_{key}"] = (
                float(np.median([f(c, "refine") for c in done])) / float(np.median([f(c, "phasing") for c in done])))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="simulated run directory (held out)")
    ap.add_argument("--out", help="results .json")
    ap.add_argument("--n", type=int, default=100, help="crystals")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile the network (default: evaluate's, from 32 patterns on); it changes "
                         "only the NN time")
    ap.add_argument("--summarise-partial", metavar="JSONL",
                    help="only summarise the per-answer lines of an unfinished run and exit")
    a = ap.parse_args(argv)
    if a.summarise_partial:
        if not Path(a.summarise_partial).is_file():
            print(f"--summarise-partial {a.summarise_partial}: no such file", file=sys.stderr)
            return 2
        print(json.dumps(summarise_partial(a.summarise_partial), indent=1))
        return 0
    if not a.data or not a.out:
        print("--data and --out are required (or --summarise-partial)", file=sys.stderr)
        return 2
    if a.n < 1:
        print(f"--n must be >= 1, got {a.n}", file=sys.stderr)
        return 2
    if not Path(a.data).is_dir():
        print(f"--data {a.data}: not a directory", file=sys.stderr)
        return 2
    from autophase.predict import DEFAULT_MODEL

    inner = ev.score
    partial = Path(a.out).with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    calls = [0]

    def score(obj, mag, truth, measured=None):
        out = inner(obj, mag, truth, measured)
        out["whole_voxel"] = whole_voxel(obj, truth)
        # evaluate scores nn, refine, phasing, sphere in that order for each crystal: one
        # line per answer as it comes, so that an interrupted run still has its figures
        k, m = divmod(calls[0], len(ev.METHODS))
        calls[0] += 1
        with partial.open("a") as f:
            f.write(json.dumps({"crystal": k, "method": ev.METHODS[m], **out}) + "\n")
        return out

    ev.score = score  # evaluate() looks the name up at call time: same pipeline, one more alignment
    t0 = time.perf_counter()
    res = ev.evaluate(a.data, a.model or DEFAULT_MODEL, n=a.n, compile=a.compile,
                      progress=lambda k, n: print(f"{k}/{n}", file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0
    old_rows = copy.deepcopy(res["crystals"])
    for r in old_rows:
        for m in ev.METHODS:
            if m in r:
                r[m].update(r[m].pop("whole_voxel"))
    res["whole_voxel"] = {"note": "the same reconstructions scored with whole-voxel alignment (before issue 14)",
                          "summary": ev.summarise(old_rows)}
    res["machine"] = {"host": platform.node(), "wall_s": wall,
                      "note": "2-core CPU shared with other jobs: timings are noisy"}
    res["command"] = " ".join(["python benchmarks/remeasure_alignment.py"] + (argv or sys.argv[1:]))
    ev.write_results(res, a.out)
    s, o = res["summary"], res["whole_voxel"]["summary"]
    for m in ev.METHODS:
        if m in s:
            print(f"{m:8s} complex {o[m]['complex_error']['median']:.4f} -> {s[m]['complex_error']['median']:.4f}"
                  f"   phase {o[m]['phase_error_rad']['median']:.4f} -> {s[m]['phase_error_rad']['median']:.4f} rad")
    print(json.dumps({"new": s["acceptance"], "whole_voxel": o["acceptance"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
