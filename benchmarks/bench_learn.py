"""One round of ``watch --learn`` on scans the model has not seen: does it promote, and is it right to?

Stores ``--n-train`` then ``--n-held`` scans of a test source (:mod:`autophase.testsets`:
the independently written ``generator2`` crystals by default) in a fresh output folder,
runs one learner round exactly as the service's background process does (fine-tune on
augmented copies of the training scans, score current and candidate by the mean χ² of
NN + K ER on the held-back scans, promote only if better), and then scores both models
on ``--n-test`` further scans that neither training nor the decision saw — whether the
decision generalises. Times are wall seconds on a machine that may be shared: say so
when quoting them.

    python benchmarks/bench_learn.py                       # shipped model, defaults below
    python benchmarks/bench_learn.py --copies 16 --epochs 1 --n-test 2 --out /tmp/learn.json   # quick

Writes ``benchmarks/results/learn-cpu.json`` (``autophase.bench.record``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="starting checkpoint (default: the shipped model)")
    p.add_argument("--source", default="generator2", help="simulator | generator2 (autophase.testsets)")
    p.add_argument("--n-train", type=int, default=6)
    p.add_argument("--n-held", type=int, default=4)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--copies", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--refine", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the learner's process uses 1)")
    p.add_argument("--out", default=None, help="record path (default benchmarks/results/learn-cpu.json)")
    a = p.parse_args(argv)

    import torch

    from autophase.bench.record import RESULTS_DIR, write_record
    from autophase.beamline.finetune import FinetuneConfig
    from autophase.live.learn import LearnConfig, ModelStore, ScanStore, judge, score_model, train_candidate
    from autophase.predict import resolve_model
    from autophase.testsets.sources import load_source

    torch.set_num_threads(a.threads)
    model = resolve_model(a.model)
    cfg = LearnConfig(holdout=a.n_held, min_train=1, max_train=a.n_train,
                      finetune=FinetuneConfig(n_augment=a.copies, epochs=a.epochs, lr=a.lr, refine=a.refine))
    items = load_source(a.source, a.n_train + a.n_held, seed=21)   # seed 21: not a set used for choosing
    test = load_source(a.source, a.n_test, seed=22)
    with tempfile.TemporaryDirectory(prefix="bench-learn-") as tmp:
        out = Path(tmp)
        store = ModelStore(out)
        v0 = store.start(model)
        scans = ScanStore(out / "learn" / "scans", keep=len(items))
        for it in items:
            scans.add(it.magnitude, it.measured, it.name.replace("/", "_"))
        files = scans.files()
        t0 = time.perf_counter()
        mags, meas, _ = ScanStore.load(files[:a.n_train])
        cand = train_candidate(store.path(v0), mags, meas, out / "train", cfg.finetune, seed=0)
        t_train = time.perf_counter() - t0
        hm, hmeas, held = ScanStore.load(files[a.n_train:])
        rec = judge(store, cand, v0, hm, hmeas, held, cfg, seconds_train=t_train)
        tm = np.stack([it.magnitude for it in test])
        t1 = time.perf_counter()
        s_cur, per_cur = score_model(store.path(v0), tm, [it.measured for it in test], a.refine)
        s_cand, per_cand = score_model(cand, tm, [it.measured for it in test], a.refine)
        t_test = time.perf_counter() - t1
    results = {
        "model": str(model), "source": a.source, "config": cfg.to_dict(), "threads": a.threads,
        "held_back": {k: rec[k] for k in ("score_current", "score_candidate", "chi2_current", "chi2_candidate",
                                          "wins", "decision")},
        "unseen_test": {"n": a.n_test, "score_current": s_cur, "score_candidate": s_cand,
                        "chi2_current": per_cur, "chi2_candidate": per_cand,
                        "noise_floor_chi2": [it.noise_floor_chi2 for it in test]},
        "decision_right": bool((rec["decision"] == "promoted") == (s_cand < s_cur)),
        "seconds": {"train": t_train, "score_held": rec["seconds_score"], "score_test": t_test},
    }
    path = write_record("learn", results, a.out or RESULTS_DIR / "learn-cpu.json")
    print(f"learn round: held-back χ² {rec['score_current']:.5g} → {rec['score_candidate']:.5g}: {rec['decision']}; "
          f"unseen χ² {s_cur:.5g} → {s_cand:.5g}; train {t_train:.0f} s; record {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
