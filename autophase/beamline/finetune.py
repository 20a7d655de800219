"""Fine-tune the network on a few measured patterns and compare before/after on one held back.

The paper (Results, "Demonstration on experimental 3D BCDI data") refines the network
pre-trained on simulations with 10 measured patterns expanded to 3,200 by rotation,
resampling and flipping, then judges it on patterns it never saw. :func:`finetune` does
that with this project's parts:

1. **held-back pattern** — given (``holdout``), or, when only one measurement exists,
   made by *photon splitting* (:func:`split_photons`): each detected photon goes to half
   A or half B with probability ½. For Poisson counts n ~ P(λ) the halves are exactly
   independent Poisson patterns P(λ/2) of the same crystal, so B is a second,
   statistically independent measurement that no training pattern contains. (It is the
   same crystal: this measures whether fine-tuning fits *this* sample better, not how
   it generalises to other crystals.)
2. **augmentation** of the training patterns (half A) by
   :func:`autophase.beamline.augment.augment_patterns` — ``n_augment`` copies, each a
   valid pattern of a rotated / rescaled / mirrored crystal or, a share ``as_measured`` of
   them, of the same crystal in its measured frame at a lower dose (photon thinning) —
   written as pattern CXIs;
3. **before** — the starting model on the held-back pattern: the network alone and
   NN + ``refine`` ER (χ², LLK_free, seconds);
4. **training** — :class:`autophase.train.trainer.Trainer` from the model's weights
   (``init``), Adam at ``lr``, BatchNorm frozen (its statistics came from thousands of
   simulated patterns; a handful of copies of one crystal would overwrite them), the
   support threshold fixed at the model's final one, best checkpoint by validation χ²
   on a 20 % split of the augmented set;
5. **after** — the fine-tuned best checkpoint on the same held-back pattern, same figures;
6. **phasing** — with its defaults on the same held-back pattern, ``phasing_starts`` seeds
   (phasing is not bit-reproducible and moves ±10 % between seeds on a measured scan), every
   run and their median; then NN + ER before and after against that median, all scored
   alike (:func:`autophase.external_suite.score_no_truth`). That is issue 15's measured-data
   line where only one scan exists: NN + 50 ER χ² ≤ phasing's on held-back photons.

Outputs in ``out/``: ``holdout.cxi`` and ``train-source.cxi`` (when split),
``augmented/aug-*.cxi``, ``train/`` (checkpoints, metrics.csv), ``before_nn.cxi``,
``before_refine.cxi``, ``after_nn.cxi``, ``after_refine.cxi`` (each with .vti, strain and
PNGs beside it), ``before_after.png`` and, last, ``results.json`` — a typed result record
(suite ``finetune``: χ² of the held-back pattern before and after, per method; its own dict
under ``details``; ``docs/results.md``). A run that dies before the end leaves no results file.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["FinetuneConfig", "split_photons", "train_config", "assess", "phasing_reference", "finetune"]


@dataclass
class FinetuneConfig:
    """The fine-tuning recipe (defaults: a few minutes on a 2-core CPU).

    The paper used lr 1e-6 over 3,200 patterns; with a few hundred augmented copies and
    a few epochs that rate does not move the weights (measured: validation χ² 0.1105 →
    0.1104 over two epochs), so the default here is 1e-4.

    as_measured : the share of the copies kept in the measured frame, photon-thinned
    (:func:`autophase.beamline.augment.augment_patterns`), the rest rotated, resampled and
    flipped; above 0 the trainer's cube symmetries are off, and at 1 the fine-tuned checkpoint
    asks the predictor for its single pass (``predict_symmetries`` 1). 0 is the paper's recipe and
    this project's before session 19. Default 0.5, chosen on scan 54's training half split
    again and a second-generator crystal's photon halves, never on the held-back half. Of the
    choice sets run after it (second-generator crystals 1–5, a second split of scan 54's
    training half), 0.5 and 1 came out level on all but one — a crystal the network cannot
    phase with any share, where 1 fitted better — so 0.5 stays: it keeps the rotated copies
    (benchmarks/bench_finetune_share.py; docs/experimental.md, "Fine-tuning in the measured
    frame").
    """

    n_augment: int = 320
    epochs: int = 4
    lr: float = 1e-4
    batch_size: int = 8
    refine: int = 50
    seed: int = 0
    max_angle_deg: float = 180.0
    freeze_bn: bool = True
    phasing_starts: int = 3
    as_measured: float = 0.5

    def __post_init__(self):
        if self.n_augment < 2 * self.batch_size:
            raise InputError(f"finetune: --n-augment {self.n_augment} is too few for batches of {self.batch_size}"
                             " (need at least two batches)")
        if self.epochs < 1 or self.lr <= 0 or self.batch_size < 1 or self.refine < 0:
            raise InputError("finetune: epochs and batch size must be ≥ 1, lr > 0, refine ≥ 0")
        if not 0 <= self.phasing_starts <= 20:
            raise InputError(f"finetune: --phasing-starts: 0 to 20 seeds, got {self.phasing_starts}")
        if not (isinstance(self.as_measured, (int, float)) and 0 <= self.as_measured <= 1):
            raise InputError(f"finetune: --as-measured: a share in [0, 1], got {self.as_measured}")


def split_photons(counts: np.ndarray, seed: int = 0, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split a pattern's photons at random into two independent patterns.

    counts : (z, y, x) float ≥ 0, photon counts (rounded to integers first: after dark
    subtraction and flat-field they are not exact integers). Each photon goes to A with
    probability ``fraction``: A = Binomial(n, f), B = n − A. For n ~ Poisson(λ),
    A ~ Poisson(fλ) and B ~ Poisson((1 − f)λ), independent. Returns float32 (A, B).
    """
    c = np.asarray(counts)
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise InputError("split_photons: counts must be finite and ≥ 0")
    if not 0 < fraction < 1:
        raise InputError(f"split_photons: fraction must be in (0, 1), got {fraction}")
    from .augment import thin_photons

    a = thin_photons(c, fraction, np.random.default_rng([seed, 0x5717]))
    return a, (np.rint(c) - a).astype(np.float32)


def train_config(cfg: FinetuneConfig, checkpoint: dict[str, Any]):
    """The :class:`~autophase.train.trainer.TrainConfig` that fine-tunes ``checkpoint``'s
    weights with ``cfg``: Adam at ``cfg.lr`` from the first step (no warm-up, no
    scheduler), BatchNorm frozen as ``cfg.freeze_bn`` says, the support threshold fixed
    at the checkpoint's final one (``threshold_end``; 0.1 when it does not say), and the
    trainer's random cube symmetries only where no copy is kept as measured
    (``cfg.as_measured`` 0)."""
    from ..train.trainer import TrainConfig

    thr = float((checkpoint.get("train") or {}).get("threshold_end", 0.1))
    # the trainer's own augmentation turns each pattern by one of the cube's 48 symmetries; it
    # would take the copies kept as measured out of the measured frame 47 times in 48, and the
    # rotated copies are spread over every orientation without it
    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=0,
                       threshold_start=thr, threshold_end=thr, threshold_steps=1, scheduler="none",
                       freeze_bn=cfg.freeze_bn, seed=cfg.seed, bn_recalibrate=0, augment=cfg.as_measured == 0)


def assess(model: str | Path, magnitude: np.ndarray, measured: np.ndarray, refine: int, source: str = ""):
    """(figures, [NN prediction, NN + refine prediction]) of ``model`` on one pattern."""
    from ..predict import Predictor, refine_prediction

    pred = Predictor(model)
    nn = pred.predict(magnitude[None], [measured], [source])[0]
    preds = [nn]
    figs = {"nn": {"chi2": nn.chi2, "llk_free": nn.llk_free, "seconds": nn.seconds_nn}}
    if refine > 0:
        rp = refine_prediction(nn, magnitude, measured, refine)
        preds.append(rp)
        figs["refine"] = {"chi2": rp.chi2, "llk_free": rp.llk_free, "seconds": rp.seconds_nn + rp.seconds_refine}
    figs["model_version"] = pred.meta.get("version")
    return figs, preds


def _comparison_png(path: Path, before: Sequence, after: Sequence) -> None:
    """Central slices of amplitude and phase, rows: before/after × NN/NN+ER."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import save_figure

    rows = [("before, NN", before[0]), ("after, NN", after[0])]
    if len(before) > 1:
        rows += [("before, NN + ER", before[1]), ("after, NN + ER", after[1])]
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, 2.5 * len(rows)), squeeze=False)
    for r, (label, p) in enumerate(rows):
        obj = p.object
        c = [s // 2 for s in obj.shape]
        amp = np.abs(obj)
        for k, (name, img) in enumerate((("|ρ| z", amp[c[0]]), ("|ρ| y", amp[:, c[1]]),
                                         ("φ z", np.where(p.support[c[0]], np.angle(obj[c[0]]), np.nan)),
                                         ("φ y", np.where(p.support[:, c[1]], np.angle(obj[:, c[1]]), np.nan)))):
            ax = axes[r, k]
            im = ax.imshow(img, cmap="gray" if k < 2 else "twilight",
                           **({} if k < 2 else {"vmin": -np.pi, "vmax": np.pi}))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{label}: {name}" + (f"\nχ² {p.chi2:.4g}" if k == 0 else ""), fontsize=8)
            if k == 3:
                fig.colorbar(im, ax=ax, fraction=0.046)
    save_figure(fig, path)


def phasing_reference(magnitude: np.ndarray, measured: np.ndarray, starts: int) -> dict[str, Any]:
    """Phasing with its defaults on one pattern from seeds 0 … ``starts`` − 1: every run's χ²,
    LLK_free and seconds, and the medians (scored as the external suite scores answers)."""
    from ..external_suite import phase_scored

    runs = [phase_scored(magnitude, measured, seed)[1] for seed in range(starts)]
    return {"runs": runs, "chi2": float(np.median([r["chi2"] for r in runs])),
            "llk_free": float(np.median([r["llk_free"] for r in runs]))}


def finetune(train_inputs: Sequence[str], out: str | Path, *, holdout: str | None = None, split: bool = False,
             model: str | None = None, config: FinetuneConfig | None = None,
             log: Callable[[str], None] = print, progress: bool | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` (default: the shipped one) on ``train_inputs``; see the module doc.

    train_inputs : prepared pattern files (counts, 64³, peak at the centre).
    holdout : the pattern held back; or ``split=True`` with a single input to split its
    photons into a training half and a held-back half.
    Returns the results dict also written to ``out/results.json``.
    """
    from ..io.cxi import write_pattern_cxi
    from ..io.patterns import load_pattern
    from ..model.checkpoint import read_checkpoint
    from ..model.network import NetworkConfig
    from ..predict import resolve_model, write_prediction
    from ..train.data import PatternFiles
    from ..train.trainer import Trainer
    from .augment import augment_patterns, write_augmented_cxi

    cfg = config or FinetuneConfig()
    if not train_inputs:
        raise InputError("finetune: no training patterns given")
    if split == (holdout is not None):
        raise InputError("finetune: give either --holdout PATTERN or --split-photons (one input), not both or neither")
    if split and len(train_inputs) != 1:
        raise InputError(f"finetune: --split-photons takes one input pattern, got {len(train_inputs)}")
    model_path = resolve_model(model)
    ck = read_checkpoint(model_path)
    network = NetworkConfig.from_dict(ck["network"])
    size = network.size
    pats = [load_pattern(p, kind="intensity") for p in train_inputs]
    held = load_pattern(holdout, kind="intensity") if holdout else None
    for p in pats + ([held] if held else []):
        if p.magnitude.shape != (size,) * 3:
            raise InputError(f"{p.source}: the network takes {size}³ patterns, got {p.magnitude.shape}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    if results_path.exists():
        results_path.unlink()  # a stale results file must not outlive a failed rerun

    t_start = time.perf_counter()
    if split:
        src = pats[0]
        a, b = split_photons(src.intensity, cfg.seed)
        meta = {"split_from": str(src.source), "split_seed": cfg.seed}
        unmeasured = ~src.measured
        write_pattern_cxi(out / "train-source.cxi", a, unmeasured, metadata=dict(meta, half="A"))
        write_pattern_cxi(out / "holdout.cxi", b, unmeasured, metadata=dict(meta, half="B"))
        train_counts, train_masks = [a], [unmeasured]
        held = load_pattern(out / "holdout.cxi", kind="intensity")
        log(f"finetune: split {src.source} into two independent halves of {a.sum():.4g} and {b.sum():.4g} photons")
    else:
        train_counts = [p.intensity for p in pats]
        train_masks = [~p.measured for p in pats]

    t0 = time.perf_counter()
    aug, aug_masks = augment_patterns(train_counts, cfg.n_augment, cfg.seed, masks=train_masks,
                                      max_angle_deg=cfg.max_angle_deg, as_measured=cfg.as_measured,
                                      return_masks=True)
    aug_paths = write_augmented_cxi(out / "augmented", aug, aug_masks,
                                    metadata={"augmented_from": [str(p) for p in train_inputs]})
    log(f"finetune: {len(train_counts)} pattern(s) → {len(aug_paths)} augmented copies in "
        f"{time.perf_counter() - t0:.1f} s ({out / 'augmented'})")

    before, before_preds = assess(model_path, held.magnitude, held.measured, cfg.refine, str(held.source))
    log(f"finetune: before: NN χ² {before['nn']['chi2']:.5g}"
        + (f", NN + {cfg.refine} ER χ² {before['refine']['chi2']:.5g}" if cfg.refine else ""))

    tcfg = train_config(cfg, ck)
    t0 = time.perf_counter()
    meta = {"command": "autophase finetune", "finetuned_from": str(model_path), "as_measured": cfg.as_measured}
    if cfg.as_measured >= 1:
        # every copy in the measured frame: the network answers best there, and averaging it
        # over the pattern's 180° rotations (the predictor's default before ER) mixes in
        # answers from frames it was not fitted in. With rotated copies beside them the
        # average did as well or better (docs/experimental.md, session 19)
        meta["predict_symmetries"] = 1
    trainer = Trainer(network, tcfg, PatternFiles([str(p) for p in aug_paths]), out / "train", init=model_path,
                      progress=progress, extra_meta=meta)
    history = trainer.fit()
    t_train = time.perf_counter() - t0
    best = out / "train" / "best.pt"

    after, after_preds = assess(best, held.magnitude, held.measured, cfg.refine, str(held.source))
    log(f"finetune: after:  NN χ² {after['nn']['chi2']:.5g}"
        + (f", NN + {cfg.refine} ER χ² {after['refine']['chi2']:.5g}" if cfg.refine else ""))

    versus, ph = {}, None
    if cfg.phasing_starts and cfg.refine:
        from ..external_suite import score_no_truth

        ph = phasing_reference(held.magnitude, held.measured, cfg.phasing_starts)
        for tag, preds in (("before", before_preds), ("after", after_preds)):
            c2 = score_no_truth(preds[1].object, held.magnitude, held.measured)["chi2"]
            versus[tag] = {"refine_chi2": c2, "phasing_chi2_median": ph["chi2"], "ratio": c2 / ph["chi2"],
                           "le_phasing": bool(c2 <= ph["chi2"])}
        each = ", ".join(f"{r['chi2']:.5g}" for r in ph["runs"])
        log(f"finetune: phasing on the held-back pattern: χ² median {ph['chi2']:.5g} over {cfg.phasing_starts} "
            f"seed(s) ({each}); NN + {cfg.refine} ER ÷ phasing: before {versus['before']['ratio']:.3f}, "
            f"after {versus['after']['ratio']:.3f}")

    names = ["nn", "refine"]
    for tag, preds in (("before", before_preds), ("after", after_preds)):
        for name, p in zip(names, preds):
            write_prediction(p, out / f"{tag}_{name}.cxi", intensity=held.intensity, unmeasured=~held.measured)
    _comparison_png(out / "before_after.png", before_preds, after_preds)

    from ..bench.record import write_record

    results = {
        "model": str(model_path), "finetuned": str(best),
        "train_inputs": [str(p) for p in train_inputs],
        "holdout": str(held.source), "holdout_kind": "photon split (independent half of the same scan)"
        if split else "separate pattern",
        "config": asdict(cfg),
        "training": {"epochs": len(history), "seconds": t_train,
                     "val_chi2": [h.get("val_chi2") for h in history],
                     "train_loss": [h.get("train_loss") for h in history]},
        "before": before, "after": after,
        "phasing": ph, "refine_vs_phasing": versus,
        "seconds_total": time.perf_counter() - t_start,
    }
    write_record("finetune", results, results_path)
    log(f"finetune: results in {results_path}")
    return results
