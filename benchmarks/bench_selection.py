"""Checkpoints scored as ``train --select-on`` scores them: NN + K ER against phasing on a panel.

    .venv/bin/python benchmarks/bench_selection.py --models autophase/models/default.pt \\
        runs/domain20k/train/best.pt checkpoints/domain20k.pt \\
        [--panel generator2:8:2,simulator:8:22,scan54:3] [--refine 50] \\
        [--out benchmarks/results/selection-cpu.json]

The panel (:mod:`autophase.train.selection`; default: generator 2 set 2, simulator seed
22, scan 54 with 3 phasing seeds — exploration sets, never generator 2 set 1) gets its
phasing references once (kept in ``runs/selection/``); then every model gets the figures
a training run would log at an epoch's end: ``select_score`` (the geometric mean over
sources of the median χ²(NN + K ER) / χ²(phasing)) and per source the median ratio and the
fraction within 1.2×. It answers two questions before a long run leans on it: does the
panel order models as the 30-crystal external suite did, and how much does it cost?

Record (suite ``selection``): per model its figures and seconds, the panel, the references'
seconds; typed as ``selection.score`` and ``selection.median_ratio`` / ``selection.within_1.2``
per source.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from autophase.bench.record import write_record  # noqa: E402

DEFAULT_PANEL = "generator2:8:2,simulator:8:22,scan54:3"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, metavar="CKPT")
    ap.add_argument("--panel", default=DEFAULT_PANEL, help=f"the --select-on panel (default {DEFAULT_PANEL})")
    ap.add_argument("--refine", type=int, default=50, help="ER iterations after the network (default 50)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "selection"), help="where the references are kept")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/selection-cpu.json)")
    args = ap.parse_args(argv)
    from autophase.errors import InputError
    from autophase.model.digest import file_sha256
    from autophase.threads import single_blas_thread
    from autophase.train.selection import SelectionPanel

    single_blas_thread()
    missing = [m for m in args.models if not Path(m).is_file()]
    if missing:
        raise SystemExit(f"bench_selection: {missing[0]}: no such checkpoint")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        panel = SelectionPanel(args.panel, args.refine, work)
    except InputError as e:
        raise SystemExit(f"bench_selection: {e}") from None
    ref_s = time.perf_counter() - t0
    models = []
    for m in args.models:
        fig = panel.score(m, device="cpu")
        models.append({"path": m, "sha256": file_sha256(m)[:16], **fig})
        print(f"{m}: select_score {fig['select_score']:.3f} "
              + " ".join(f"{k[7:]} {v:.3f}" for k, v in fig.items() if k.startswith("select_") and k not in
                         ("select_score", "select_s")) + f" ({fig['select_s']:.0f} s)", flush=True)
    results = {"panel": panel.spec, "refine": args.refine, "n_patterns": len(panel.patterns),
               "references_s": ref_s, "reference_chi2": {p.name: p.reference_chi2 for p in panel.patterns},
               "models": models}
    path = write_record("selection", results, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
