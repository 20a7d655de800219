"""Fine-tuning's share of copies kept as measured, chosen on sets that are not scan 54's held-back half.

    .venv/bin/python benchmarks/bench_finetune_share.py --prep DIR            # the choice sets
    .venv/bin/python benchmarks/bench_finetune_share.py --commands DIR 0 0.5 1 # the runs to make
    .venv/bin/python benchmarks/bench_finetune_share.py --runs DIR/*-f* --out FILE

``autophase finetune`` augments the training patterns into copies of *other* crystals —
rotated, resampled, mirrored — and the trainer turns each by one of the cube's 48
symmetries, so the measured crystal in its measured orientation is almost never among
them. Its issue-15 line is judged on held-back photons of the same scan: the same crystal,
the same orientation. ``--as-measured F`` keeps a share F of the copies in the measured
frame, photon-thinned (:func:`autophase.beamline.augment.thin_photons`).

The share is chosen here, on sets none of which is scan 54's held-back half B:

* ``s54``: scan 54's *training* half A (:func:`autophase.beamline.finetune.split_photons`,
  seed 0: the half ``finetune --split-photons`` trains on) split again, seed 1, into A1
  (train) and A2 (held back); ``s54s<seed>``: the same with split seeds 2 … ``--s54-splits``;
* ``g2s0c<i>``: crystal i (``--n-gen2``, default 0–2) of the second generator's set 0 (a
  choice set of earlier sessions), at twice A's photons, split into halves — a crystal from
  outside the project with a truth, so the fine-tuned answers' phase error is known, not only
  their χ².

``--runs`` collects each run's ``results.json`` (NN and NN + 50 ER χ² before and after,
phasing's median, their ratio) and, where the held-back half is a generator-2 crystal (its
CXI's metadata names it), makes the four answers again from the two models and scores them
and phasing from three seeds against the truth (:func:`autophase.external_suite.score_answer`).
Every run's fine-tuned network is also run with K = 1 and K = 4 symmetric copies before the
ER (``after_by_symmetries``), whatever its checkpoint asks for: a network fitted in the
measured frame may answer worse averaged over frames it saw less.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autophase.bench.record import write_record  # noqa: E402

GEN2_SET = 0
SYMMETRIES = (1, 4)  # the predictor's single pass and its default average (DEFAULT_SYMMETRIES) before ER
TRUTH_KEYS = ("chi2", "llk_free", "phase_error_rad", "complex_error", "ssim_box")


def prep(out: Path, n_gen2: int = 3, s54_splits: int = 1) -> list[tuple[str, str]]:
    """Write the choice sets' (train, held-back) CXIs into ``out``; returns their names.

    Scan 54's half A is split again with seeds 1 … ``s54_splits``: ``s54-A1/A2`` (seed 1),
    ``s54s<seed>-A1/A2`` for the others."""
    from autophase.beamline.finetune import split_photons
    from autophase.io.cxi import write_pattern_cxi
    from autophase.io.patterns import load_pattern
    from autophase.testsets.generator import generate

    from autophase.testsets.sources import prep_scan54

    out.mkdir(parents=True, exist_ok=True)
    # runs/testsets/scan54.cxi, made with `autophase prep` from the shared raw frames when missing
    scan = load_pattern(prep_scan54(), kind="intensity")
    a, _ = split_photons(scan.intensity, seed=0)        # finetune --split-photons' training half
    unmeasured = ~scan.measured
    pairs = []
    for seed in range(1, s54_splits + 1):
        a1, a2 = split_photons(a, seed=seed)
        name = "s54" if seed == 1 else f"s54s{seed}"
        meta = {"split_from": "scan54.cxi half A (split seed 0)", "split_seed": seed}
        write_pattern_cxi(out / f"{name}-A1.cxi", a1, unmeasured, metadata=dict(meta, half="A"))
        write_pattern_cxi(out / f"{name}-A2.cxi", a2, unmeasured, metadata=dict(meta, half="B"))
        pairs.append((f"{name}-A1.cxi", f"{name}-A2.cxi"))
    for i in range(n_gen2):
        c = generate(GEN2_SET * 1_000_000 + i, photons=2 * float(a.sum()))
        ga, gb = split_photons(c.magnitude.astype(np.float64) ** 2, seed=0)
        none = np.zeros(ga.shape, bool)
        for half, counts in (("A", ga), ("B", gb)):
            write_pattern_cxi(out / f"g2s{GEN2_SET}c{i}-{half}.cxi", counts, none,
                              metadata={"source": f"generator2/s{GEN2_SET}/{i}", "half": half})
        pairs.append((f"g2s{GEN2_SET}c{i}-A.cxi", f"g2s{GEN2_SET}c{i}-B.cxi"))
    return pairs


def _share_tag(share: str) -> str:
    return "f" + share.replace(".", "")


def commands(d: Path, shares: list[str]) -> list[str]:
    """The ``autophase finetune`` command of each (set, share) run, in ``d``."""
    sets = sorted({p.name.rsplit("-", 1)[0] for p in d.glob("*-A*.cxi")})
    out = []
    for s in sets:
        train = d / (f"{s}-A1.cxi" if (d / f"{s}-A1.cxi").exists() else f"{s}-A.cxi")
        held = d / (f"{s}-A2.cxi" if (d / f"{s}-A2.cxi").exists() else f"{s}-B.cxi")
        for f in shares:
            out.append(f"autophase finetune {train} --holdout {held} -o {d / (s + '-' + _share_tag(f))} "
                       f"--phasing-starts 3 --no-progress --as-measured {f}")
    return out


def collect(run: Path, phasing_seeds: int = 3) -> dict:
    """One run's figures: its results.json, and truth scores where the held-back half has a
    truth (phasing from ``phasing_seeds`` seeds scored against it too)."""
    from autophase.beamline.finetune import assess
    from autophase.external_suite import phase_scored, score_answer
    from autophase.predict import DEFAULT_SYMMETRIES, Predictor, refine_prediction
    from autophase.io.cxi import read_cxi
    from autophase.io.patterns import load_pattern

    res = json.loads((run / "results.json").read_text())
    det = res["details"]
    row = {"run": run.name, "share": det["config"].get("as_measured", 0.0), "holdout": det["holdout"],
           "nn_chi2": {t: det[t]["nn"]["chi2"] for t in ("before", "after")},
           # a run made with --phasing-starts 0 has no phasing to set NN + ER against
           "ratio": {t: v["ratio"] for t, v in (det.get("refine_vs_phasing") or {}).items()},
           "phasing_chi2": (det.get("phasing") or {}).get("chi2"),
           "val_chi2": det["training"]["val_chi2"], "train_seconds": det["training"]["seconds"]}
    meta = read_cxi(det["holdout"])["metadata"]
    src = str(meta.get("source", ""))
    held = load_pattern(det["holdout"], kind="intensity")
    truth = None
    if src.startswith("generator2/"):
        from autophase.testsets.generator import generate

        _, s, i = src.split("/")
        truth = generate(int(s[1:]) * 1_000_000 + int(i), photons=1.0).truth
    # the fine-tuned network with and without the 4-copy average, whatever its checkpoint says;
    # the answers at the checkpoint's own K are the run's "after" (made again, deterministic)
    row["after_by_symmetries"], after = {}, None
    for k in SYMMETRIES:
        pred = Predictor(det["finetuned"], symmetries=k)
        p = pred.predict(held.magnitude[None], [held.measured], ["held"])[0]
        rp = refine_prediction(p, held.magnitude, held.measured, det["config"]["refine"])
        if k == (pred.meta.get("predict_symmetries") or DEFAULT_SYMMETRIES):
            after = [p, rp]
        sc = score_answer(rp.object, held.magnitude, held.measured, truth)
        e = {"nn_chi2": p.chi2, "refine_chi2": sc["chi2"], "averaged": p.symmetries > 1}
        if row["phasing_chi2"]:
            e["ratio"] = sc["chi2"] / row["phasing_chi2"]
        if truth is not None:
            e["phase_error_rad"] = sc["phase_error_rad"]
        row["after_by_symmetries"][str(k)] = e
    if truth is not None:
        row["source"] = src
        # the answers made again from the two models (deterministic): the CXIs hold them
        # post-processed (centred, ramp and offset removed), not as the χ² scored them
        row["truth"] = {}
        _, before = assess(det["model"], held.magnitude, held.measured, det["config"]["refine"])
        for tag, preds in (("before", before), ("after", after)):
            for name, p in zip(("nn", "refine"), preds):
                sc = score_answer(p.object, held.magnitude, held.measured, truth)
                row["truth"][f"{tag}_{name}"] = {k: sc[k] for k in TRUTH_KEYS}
        ph = [phase_scored(held.magnitude, held.measured, seed, truth)[1] for seed in range(phasing_seeds)]
        row["truth"]["phasing_median"] = {k: float(np.median([p[k] for p in ph])) for k in TRUTH_KEYS}
    else:
        row["source"] = f"scan54 (half A split again, seed {meta.get('split_seed', 1)})"
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--prep", metavar="DIR", help="write the choice sets into DIR")
    g.add_argument("--commands", nargs="+", metavar=("DIR", "SHARE"), help="print the finetune commands")
    g.add_argument("--runs", nargs="+", metavar="RUN", help="finetune output directories to collect")
    ap.add_argument("--n-gen2", type=int, default=3, metavar="N",
                    help="with --prep: generator-2 crystals 0 … N−1 of set 0 (default 3)")
    ap.add_argument("--s54-splits", type=int, default=1, metavar="N",
                    help="with --prep: scan 54's half A split again with seeds 1 … N (default 1)")
    ap.add_argument("--phasing-seeds", type=int, default=3, metavar="N",
                    help="phasing runs scored against a generator-2 truth (default 3)")
    ap.add_argument("--out", help="the record (with --runs)")
    a = ap.parse_args(argv)
    if a.prep:
        if a.n_gen2 < 0:
            ap.error(f"--n-gen2: 0 or more crystals, got {a.n_gen2}")
        if a.s54_splits < 1:
            ap.error(f"--s54-splits: 1 or more splits, got {a.s54_splits}")
        for pair in prep(Path(a.prep), a.n_gen2, a.s54_splits):
            print(*pair)
        return 0
    if a.commands:
        if len(a.commands) < 2:
            ap.error("--commands DIR SHARE [SHARE …]")
        print("\n".join(commands(Path(a.commands[0]), a.commands[1:])))
        return 0
    from autophase.threads import single_blas_thread

    single_blas_thread()
    missing = [r for r in a.runs if not (Path(r) / "results.json").exists()]
    if missing:
        ap.error(f"no results.json in {', '.join(missing)} (a finetune run that did not finish)")
    if a.phasing_seeds < 1:
        ap.error(f"--phasing-seeds: at least 1, got {a.phasing_seeds}")
    rows = [collect(Path(r), a.phasing_seeds) for r in sorted(a.runs)]
    for r in rows:
        line = (f"{r['run']:<14} share {r['share']:<4} NN χ² {r['nn_chi2']['before']:.4f} → {r['nn_chi2']['after']:.4f}"
                + (f"  NN + 50 ER ÷ phasing {r['ratio']['before']:.3f} → {r['ratio']['after']:.3f}"
                   if r["ratio"] else ""))
        if "truth" in r:
            t = r["truth"]
            line += (f"  phase error {t['before_refine']['phase_error_rad']:.3f} → {t['after_refine']['phase_error_rad']:.3f}"
                     f" (phasing {t['phasing_median']['phase_error_rad']:.3f})")
        for k, e in r["after_by_symmetries"].items():
            line += f"\n    after, K={k}: NN χ² {e['nn_chi2']:.4f} NN + ER χ² {e['refine_chi2']:.5f}" + (
                f" ÷ phasing {e['ratio']:.3f}" if "ratio" in e else "") + (
                f" phase error {e['phase_error_rad']:.3f}" if "phase_error_rad" in e else "")
        print(line)
    if a.out:
        write_record("finetune-share", {"rows": rows}, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
