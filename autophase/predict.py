"""Single-shot inversion with a trained AutoPhaseNN, optionally refined by K iterations of ER.

The CNN alone maps each pattern's magnitudes to amplitude and phase (no physics at
prediction time); many patterns go through it in batches. The result is made
comparable with iterative phasing (:class:`autophase.phasing.PhasingResult`):

* ``object`` — complex64 (64, 64, 64) in the data's units: the network's
  A·1[A > 0.1 max A]·e^{iφ} times the least-squares scale s = ⟨F̂, M⟩/⟨F̂, F̂⟩ over the
  measured voxels, so that |far_field(object)|² ≈ counts;
* ``support`` — A > t × max A with t the support threshold the model was trained with
  (its final value, ``threshold_end`` in the checkpoint; 0.1 — the paper's 10 % contour —
  when the checkpoint does not say): prediction cuts where training cut;
* ``chi2`` — eq. 2 over the measured voxels (the fitted scale is already in the object);
* ``llk_free`` — the Poisson deviance on the same ≈5 % free voxels phasing uses
  (:func:`autophase.physics.metrics.free_mask` with its default seed), so values compare.

``refine=K`` hands the prediction to :func:`autophase.phasing.phase` with the schedule
``K*ER`` and the prediction as the start (the paper's refinement: 50 ER iterations from
the network's output, support from its thresholded amplitude); then the phasing result's
figures are reported. How the support starts and is updated is a :class:`Refinement`
(defaults: the predicted amplitude > 0.1 of its maximum, shrink-wrapped every 5 iterations
at 0.1, phasing's own threshold; the paper's fixed support is ``shrink_wrap_every=0``, which
left χ² 2–4× higher in every test here; docs/training.md).

When ER follows (``refine`` > 0), for a pattern whose single pass fits the data worse
than χ² 0.008 (``average_above``), the network's answer is the aligned mean over 4
symmetric copies of it (``symmetries``, :mod:`autophase.model.symmetry`); the network
alone (``refine`` 0) is one pass by default (:func:`default_symmetries`). On 100 held-out crystals (seed 14) this, with the
refinement defaults, puts NN + 50 ER within 1.2× of phasing's χ² on 81 % of crystals
(one pass and the old refinement: 55 %), at 3.3× phasing's speed on a 2-core CPU.

Every output names the model it came from (``model_version`` = SHA-256 prefix of the
checkpoint file, and its path). Without ``--model``, the shipped
``autophase/models/default.pt`` is used when it exists.

Example::

    p = Predictor()                                  # the shipped model
    results = p.predict(np.stack([mag1, mag2]))      # (N, 64, 64, 64) √counts
    results[0].object, results[0].chi2
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError

__all__ = ["DEFAULT_MODEL", "DEFAULT_SYMMETRIES", "DEFAULT_SYMMETRIES_ALONE", "default_symmetries",
           "DEFAULT_AVERAGE_ABOVE", "SUPPORT_THRESHOLD", "Refinement",
           "Prediction", "Predictor", "default_model_path",
           "resolve_model", "BACKENDS", "finish_prediction", "refine_prediction", "refinement_runs", "write_prediction",
           "add_refinement_arguments", "refinement_from_args", "judging_refinement"]

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.pt"
SUPPORT_THRESHOLD = 0.1
# symmetric copies of each pattern the network's answer is averaged over (autophase.model.symmetry)
# when K > 0 ER iterations follow: chosen on NN + 50 ER (docs/training.md)
DEFAULT_SYMMETRIES = 4
# ... and when the network's answer is the product (refine 0): one pass. There the copies
# sharpen simulated crystals' amplitude but not their phase, and fit the measured scan worse,
# at K× the network's time (docs/training.md, "The network alone (`--refine 0`)")
DEFAULT_SYMMETRIES_ALONE = 1
# ... but only for patterns whose single pass has χ² above this: below it, NN + 50 ER was
# within 1.2× of phasing's χ² on 34 of 35 held-out crystals without averaging (docs/training.md)
DEFAULT_AVERAGE_ABOVE = 0.008
# how the refinement chooses among its runs (Refinement.keep_by): the PhasingResult field minimised
KEEP_BY = ("chi2", "llk_free")


@dataclass(frozen=True)
class Refinement:
    """How K ER iterations refine a network prediction: the support (the algorithm is ER).

    start_threshold : the first support is |ρ_NN| > start_threshold · max|ρ_NN|, within
        the prediction's own support (so never looser than the model's training cut).
    shrink_wrap_every : J; the support is recomputed every J iterations (0: fixed, the paper).
    sw_threshold, sw_sigma : shrink-wrap S ← (|ρ| ∗ G_σ) > sw_threshold · max (σ in voxels).

    The defaults — start at 0.1, shrink-wrap every 5 iterations at 0.1, phasing's own
    threshold since issue 14 — were chosen on three sources (the simulator, the second
    generator, scan 54) and confirmed on two sets used for nothing else; against the
    earlier start 0.2 / every 5 at 0.15, chosen on the simulator alone, χ² and LLK_free fall
    on the second generator and on scan 54, at the price of a rim of weak, wrapped-phase
    surface voxels like the one phasing's own answer has (docs/training.md, "The
    refinement's support, chosen on three sources"). ``Refinement(0.2, 5, 0.15)`` is that
    earlier choice, ``Refinement(0.1, 10, 0.2)`` the one before it.

    outline_ratio : R; when the outline the data's autocorrelation gives
        (:mod:`autophase.outline`) and the network's first support differ in volume by more
        than R× either way, the K iterations run a second time from that outline (flat
        amplitude, the network's phase) and one result is kept (``keep_by``). 1: always;
        0: the network's outline alone (the paper's refinement, whatever ``outline_chi2``
        says). The default 1.5 was chosen on the simulator, the second generator and scan 54
        in session 14 (docs/training.md, "A second outline from the data").
    outline_chi2 : X; the runs on the data's outline are made as well where the network's
        own answer fits the pattern worse than χ² X, whatever the volumes say (0: the volumes
        alone, session 16's rule). Where the network's answer already fits, its outline is
        trusted and one ER runs; where it does not, the crystal is one the network has not
        learnt, and the runs on the data's outline helped there even when the volumes agreed
        (default 0.05: the simulator's crystals at 10⁶ photons fit below it, nearly all of the
        second generator's above it; docs/training.md, "Every start, kept by χ²").
    zero_phase_start : on the data's outline, a third start as well: the same flat
        amplitude with no phase (:func:`autophase.outline.autocorrelation_starts`); one of
        the runs is kept (``keep_by``). On by default since session 15, chosen on the second
        generator's sets 0 and 2 and the simulator's set 12, confirmed on sets used for nothing
        else (docs/training.md, "A start with no phase"); off is session 14's refinement.
    zero_phase_sw_threshold : T₀; the phase-free start runs twice, shrink-wrapping at
        ``sw_threshold`` and at T₀, and one of the four runs is kept (0: once,
        session 15's refinement). From a flat start the first shrink-wraps at 0.1 can cut away
        part of a crystal the blurred iterate has not yet filled; a lower threshold keeps it
        while ER fills it, and where it was not needed the choice keeps another. It costs one
        more ER run. Default 0.05, chosen on the second generator's sets 0, 2, 3 and 4 and
        confirmed on sets 5–8 (docs/training.md, "The phase-free start at a second threshold").
    keep_by : which run is kept: ``"chi2"``, the lowest χ² on the voxels the runs were fitted
        to among the runs whose LLK_free is within ``llk_free_margin`` of the lowest, or
        ``"llk_free"``, the lowest Poisson deviance on the free voxels (5 % of the voxels, in
        islands off the centre; :func:`autophase.physics.metrics.free_mask`). Every run is the
        same ER from one pattern, so the χ² compares like with like, over 19× more voxels than
        LLK_free; the margin keeps out a run that fits the fitted voxels by overfitting them
        on a looser support (on scan 54, the phase-free run at threshold 0.05).
    llk_free_margin : m; with ``keep_by`` χ², only runs with LLK_free ≤ (1 + m) × the lowest
        compete (default 0.1).

    loose_chi2_margin : l; with ``keep_by`` χ², the run on a looser support (shrink-wrapped at
        ``zero_phase_sw_threshold`` below ``sw_threshold``) is kept only where its χ² is below
        (1 − l) × that of the run kept among the others (default 0.1; 0: it competes as an
        equal, session 17's rule). A looser support always fits the pattern a little better
        (more voxels are free to fit it); where that is all it buys, its answer carries a
        blurred halo of weak voxels round the crystal that the χ² does not see and the shape
        (SSIM) does. Chosen in session 18 on the second generator's sets 0, 2, 3, 4 and the
        simulator's 12, confirmed on the second generator's sets 5–10 (docs/training.md,
        "A looser support must earn its place").

    ``keep_by``, ``llk_free_margin`` and ``outline_chi2`` (session 17) were chosen on the second
    generator's sets 0, 2, 3, 4, the simulator's set 12 and scan 54, and confirmed on the second
    generator's sets 5–10 and the simulator's 24 and 25 (docs/training.md, "Every start, kept by
    χ²"); the truth's phase error, which no rule sees, is what says the kept runs are better
    answers and not only better fits. ``Refinement(keep_by="llk_free", outline_chi2=0)`` is
    session 16's refinement.
    """

    start_threshold: float = 0.1
    shrink_wrap_every: int = 5
    sw_threshold: float = 0.1
    sw_sigma: float = 1.0
    outline_ratio: float = 1.5
    zero_phase_start: bool = True
    zero_phase_sw_threshold: float = 0.05
    keep_by: str = "chi2"
    llk_free_margin: float = 0.1
    outline_chi2: float = 0.05
    loose_chi2_margin: float = 0.1

    def outline_phases(self) -> tuple[str, ...]:
        """The phases of the starts on the data's outline (:data:`autophase.outline.START_PHASES`)."""
        return ("network", "zero") if self.zero_phase_start else ("network",)

    def outline_runs(self) -> list[tuple[str, float]]:
        """(phase, shrink-wrap threshold) of each run on the data's outline, in order: the
        network's phase at ``sw_threshold``, then, with ``zero_phase_start``, no phase at
        ``sw_threshold`` and at ``zero_phase_sw_threshold`` (when that is set and differs)."""
        runs = [(ph, self.sw_threshold) for ph in self.outline_phases()]
        t0 = self.zero_phase_sw_threshold
        if self.zero_phase_start and t0 > 0 and t0 != self.sw_threshold:
            runs.append(("zero", t0))
        return runs

    def wants_second_outline(self, ratio: float, network_chi2: float = float("nan")) -> bool:
        """Whether a volume ratio |autocorrelation outline| / |network outline| (``outline_ratio``;
        an empty outline always does) or the network's own χ² (``outline_chi2``) calls for the
        runs on the data's outline."""
        if self.outline_ratio <= 0:
            return False
        if self.outline_chi2 > 0 and network_chi2 > self.outline_chi2:
            return True
        if not (ratio > 0 and np.isfinite(ratio)):
            return True
        return self.outline_ratio == 1 or max(ratio, 1.0 / ratio) > self.outline_ratio

    def start_support(self, obj: np.ndarray, support: np.ndarray) -> np.ndarray:
        """The first support: ``support`` ∩ (|obj| > start_threshold · max|obj|), bool (z, y, x)."""
        from .physics.forward import support_from_amplitude

        return np.asarray(support, bool) & support_from_amplitude(obj, self.start_threshold)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def validate(self) -> "Refinement":
        """Check every field (ranges as phasing's, :mod:`autophase.phasing.checks`); raise a
        ``ParamError`` (a ValueError and an InputError) naming the first bad one."""
        from .phasing import checks

        checks.check_threshold("start_threshold", self.start_threshold, low_inclusive=True)
        checks.check_period("shrink_wrap_every", self.shrink_wrap_every)
        checks.check_threshold("sw_threshold", self.sw_threshold)
        checks.check_sigma("sw_sigma", self.sw_sigma)
        r = self.outline_ratio
        if not checks._is_real(r) or not np.isfinite(r) or not (r == 0 or r >= 1):
            raise checks.ParamError("outline_ratio", r, "must be 0 (off), 1 (always) or a volume ratio > 1")
        if not isinstance(self.zero_phase_start, (bool, np.bool_)):
            raise checks.ParamError("zero_phase_start", self.zero_phase_start, "must be True or False")
        if self.zero_phase_sw_threshold != 0:
            checks.check_threshold("zero_phase_sw_threshold", self.zero_phase_sw_threshold)
        if self.keep_by not in KEEP_BY:
            raise checks.ParamError("keep_by", self.keep_by, f"must be one of {', '.join(KEEP_BY)}")
        for name in ("llk_free_margin", "outline_chi2"):
            m = getattr(self, name)
            if not checks._is_real(m) or not np.isfinite(m) or m < 0:
                raise checks.ParamError(name, m, "must be a finite number ≥ 0")
        m = self.loose_chi2_margin
        if not checks._is_real(m) or not np.isfinite(m) or not 0 <= m < 1:
            raise checks.ParamError("loose_chi2_margin", m, "must be a number in [0, 1)")
        return self

    def kept(self, results: list, thresholds: Sequence[float] | None = None) -> int:
        """Index of the run to keep among ``results`` (each with ``chi2`` and ``llk_free``, as
        :class:`~autophase.phasing.PhasingResult`; the network's own start first).

        ``keep_by`` LLK_free: the lowest (session 16's rule, unchanged). ``keep_by`` χ²: among
        the runs with a finite χ² and LLK_free, the lowest χ² of those with LLK_free ≤
        (1 + ``llk_free_margin``) × their lowest (the lowest χ² of all where none has a finite
        LLK_free). A NaN (a run that failed) never wins; a tie keeps the earlier start; where
        every run failed, the first.

        thresholds : each run's shrink-wrap threshold (:attr:`RefinementRuns.runs`). With
            ``keep_by`` χ², a run shrink-wrapped below ``sw_threshold`` (a looser support) is
            kept only where its χ² is below (1 − ``loose_chi2_margin``) × that of the run the
            same rule keeps among the others. None: every run as an equal.
        """
        def lowest(idx, key):
            best = None
            for k in idx:
                v = getattr(results[k], key)
                if np.isfinite(v) and (best is None or v < getattr(results[best], key)):
                    best = k
            return best

        def by_chi2(every):
            good = [k for k in every if np.isfinite(results[k].chi2)]
            free = [k for k in good if np.isfinite(results[k].llk_free)]
            ok = good
            if free:
                cap = (1.0 + self.llk_free_margin) * results[lowest(free, "llk_free")].llk_free
                ok = [k for k in free if results[k].llk_free <= cap]
            return lowest(ok, "chi2")

        every = range(len(results))
        if self.keep_by == "llk_free":
            k = lowest(every, "llk_free")
            return 0 if k is None else k
        k = by_chi2(every)
        if k is not None and thresholds is not None and self.loose_chi2_margin > 0:
            loose = {j for j in every if thresholds[j] < self.sw_threshold}
            if k in loose:
                other = by_chi2([j for j in every if j not in loose])
                if other is not None and results[k].chi2 > (1.0 - self.loose_chi2_margin) * results[other].chi2:
                    k = other
        return 0 if k is None else k


def judging_refinement() -> Refinement:
    """The refinement that scores a *network* rather than an answer (the learner's promotion
    rule, ``train --select-on``): the default with every start carrying the network's phase
    (``zero_phase_start`` off, session 14's refinement). The phase-free start owes the network
    nothing but the crystal's place in the grid, so where it wins a poor network scores as
    well as a good one: with it, the shipped weights with noise of each tensor's spread
    added were promoted over the shipped model on two measured scans."""
    return Refinement(outline_ratio=1.5, zero_phase_start=False, zero_phase_sw_threshold=0.0, keep_by="llk_free",
                      outline_chi2=0.0)


def default_symmetries(refine: int) -> int | None:
    """K when the caller does not choose: :data:`DEFAULT_SYMMETRIES_ALONE` for the network
    alone (``refine`` = 0); before ``refine`` > 0 ER iterations None, which :class:`Predictor`
    reads as the model's own K (``predict_symmetries`` in its checkpoint: 1 for a network
    fine-tuned in the measured frame alone, ``finetune --as-measured 1``) and else
    :data:`DEFAULT_SYMMETRIES`."""
    return None if refine > 0 else DEFAULT_SYMMETRIES_ALONE


def add_refinement_arguments(p) -> None:
    """``--symmetries`` and the ``--refine-*`` options of ``predict``, ``evaluate`` and ``watch``
    (defaults: :data:`DEFAULT_SYMMETRIES`, :class:`Refinement`)."""
    d = Refinement()
    p.add_argument("--symmetries", type=int, default=None, metavar="K",
                   help=f"average the network over K symmetric copies of each pattern, 1–8 (default "
                        f"{DEFAULT_SYMMETRIES} with --refine > 0: the identity and the three 180° rotations, "
                        f"or the model's own K (1 for one fine-tuned with --as-measured 1); "
                        f"{DEFAULT_SYMMETRIES_ALONE} with --refine 0: one pass, K× faster)")
    p.add_argument("--average-above", type=float, default=DEFAULT_AVERAGE_ABOVE, metavar="CHI2",
                   help=f"average only patterns whose single pass has χ² above this "
                        f"(default {DEFAULT_AVERAGE_ABOVE}; 0: average every pattern)")
    p.add_argument("--refine-shrink-wrap", type=int, default=d.shrink_wrap_every, metavar="J",
                   help=f"shrink-wrap the support every J refinement iterations (default {d.shrink_wrap_every}; "
                        "0: fixed, as in the paper)")
    p.add_argument("--refine-sw-threshold", type=float, default=d.sw_threshold, metavar="T",
                   help=f"shrink-wrap threshold, fraction of the blurred amplitude's maximum (default {d.sw_threshold})")
    p.add_argument("--refine-start-threshold", type=float, default=d.start_threshold, metavar="T",
                   help=f"first support: predicted amplitude > T × its maximum (default {d.start_threshold})")
    p.add_argument("--refine-outline-ratio", type=float, default=d.outline_ratio, metavar="R",
                   help=f"when the pattern's autocorrelation and the network disagree on the crystal's volume "
                        f"by more than R×, refine from both outlines as well and keep one run (--refine-keep-by) "
                        f"(default {d.outline_ratio:g}; 1: always; 0: the network's outline alone)")
    p.add_argument("--refine-zero-phase", action=argparse.BooleanOptionalAction, default=d.zero_phase_start,
                   help="on the pattern's outline, also refine from a start with no phase "
                        "(default: on; --no-refine-zero-phase: the network's phase alone)")
    p.add_argument("--refine-zero-phase-threshold", type=float, default=d.zero_phase_sw_threshold, metavar="T0",
                   help=f"run the start with no phase a second time, shrink-wrapping at T0 "
                        f"(default {d.zero_phase_sw_threshold:g}; 0: once, at --refine-sw-threshold)")
    p.add_argument("--refine-keep-by", choices=KEEP_BY, default=d.keep_by,
                   help=f"which run to keep: the lowest χ² on the fitted voxels (among runs with LLK_free within "
                        f"--refine-llk-free-margin of the lowest), or the lowest LLK_free on the free voxels "
                        f"(default {d.keep_by})")
    p.add_argument("--refine-outline-chi2", type=float, default=d.outline_chi2, metavar="X",
                   help=f"also refine from the pattern's outline where the network's answer has χ² above X "
                        f"(default {d.outline_chi2:g}; 0: only where the outlines disagree)")
    p.add_argument("--refine-llk-free-margin", type=float, default=d.llk_free_margin, metavar="M",
                   help=f"with --refine-keep-by chi2, only runs with LLK_free ≤ (1 + M) × the lowest compete "
                        f"(default {d.llk_free_margin:g})")
    p.add_argument("--refine-loose-chi2-margin", type=float, default=d.loose_chi2_margin, metavar="L",
                   help=f"with --refine-keep-by chi2, keep the run at --refine-zero-phase-threshold (a looser "
                        f"support) only where its χ² is below (1 − L) × the best of the others "
                        f"(default {d.loose_chi2_margin:g}; 0: as an equal)")


def refinement_from_args(args) -> Refinement:
    """A :class:`Refinement` from the options of :func:`add_refinement_arguments`, checked."""
    from .phasing.checks import ParamError

    r = Refinement(start_threshold=args.refine_start_threshold, shrink_wrap_every=args.refine_shrink_wrap,
                   sw_threshold=args.refine_sw_threshold, outline_ratio=args.refine_outline_ratio,
                   zero_phase_start=args.refine_zero_phase,
                   zero_phase_sw_threshold=args.refine_zero_phase_threshold, keep_by=args.refine_keep_by,
                   llk_free_margin=args.refine_llk_free_margin, outline_chi2=args.refine_outline_chi2,
                   loose_chi2_margin=args.refine_loose_chi2_margin)
    options = {"start_threshold": "--refine-start-threshold", "shrink_wrap_every": "--refine-shrink-wrap",
               "sw_threshold": "--refine-sw-threshold", "outline_ratio": "--refine-outline-ratio",
               "zero_phase_sw_threshold": "--refine-zero-phase-threshold", "keep_by": "--refine-keep-by",
               "llk_free_margin": "--refine-llk-free-margin", "outline_chi2": "--refine-outline-chi2",
               "loose_chi2_margin": "--refine-loose-chi2-margin"}
    try:
        return r.validate()
    except ParamError as e:
        raise e.for_option(options.get(e.field, e.field)) from None


def default_model_path() -> Path | None:
    """The shipped model, if this installation has one."""
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None


def resolve_model(path: str | os.PathLike | None) -> Path:
    """``path``, or the shipped model; a clear InputError when there is neither."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such model checkpoint")
        return p
    d = default_model_path()
    if d is None:
        raise InputError(f"no model given and no shipped model at {DEFAULT_MODEL}: pass --model CKPT "
                         "(a checkpoint.pt/best.pt written by `autophase train`)")
    return d


@dataclass
class Prediction:
    """One pattern's inversion (fields as in :class:`autophase.phasing.PhasingResult`)."""

    object: np.ndarray
    support: np.ndarray
    chi2: float
    llk_free: float
    source: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    refine_iterations: int = 0
    refinement: Refinement | None = None
    seconds_nn: float = 0.0
    seconds_refine: float = 0.0
    symmetries: int = 1
    history: dict[str, Any] = field(default_factory=dict)
    #: which outline the kept refinement started from: "network", or "autocorrelation"
    #: (:class:`Refinement` ``outline_ratio``); "" before any refinement
    outline: str = ""
    #: the phase it started with: "network", or "zero" (:class:`Refinement` ``zero_phase_start``)
    start_phase: str = ""
    #: the shrink-wrap threshold of the kept run (:class:`Refinement` ``zero_phase_sw_threshold``);
    #: NaN before any refinement
    start_sw_threshold: float = float("nan")

    def kept_start(self) -> dict[str, Any]:
        """Which of the refinement's runs was kept, as result rows record it: ``outline``,
        ``start_phase``, ``start_sw_threshold`` (a float; NaN before any refinement)."""
        return {"outline": self.outline, "start_phase": self.start_phase,
                "start_sw_threshold": self.start_sw_threshold}

    def to_npz_dict(self) -> dict[str, Any]:
        return {
            "object": self.object.astype(np.complex64), "support": self.support.astype(bool),
            "chi2": np.float64(self.chi2), "llk_free": np.float64(self.llk_free),
            "model_version": np.str_(self.model.get("version", "")),
            "model_sha256": np.str_(self.model.get("sha256", "")),
            "model_path": np.str_(self.model.get("path", "")),
            "input": np.str_(self.source), "refine_iterations": np.int64(self.refine_iterations),
            **{f"refine_{k}": np.asarray(v) for k, v in (self.refinement.to_dict() if self.refinement else {}).items()},
            "symmetries": np.int64(self.symmetries), "seconds_nn": np.float64(self.seconds_nn),
            "seconds_refine": np.float64(self.seconds_refine), "refine_outline": np.str_(self.outline),
            "refine_start_phase": np.str_(self.start_phase),
            "refine_start_sw_threshold": np.float64(self.start_sw_threshold),
            "chi2_history": np.asarray(self.history.get("chi2", []), np.float64),
            **({"adapt_steps": np.int64(self.history["adapt_steps"]), "adapt_lr": np.float64(self.history["adapt_lr"]),
                "adapt_chi2": np.asarray(self.history["adapt_chi2"], np.float64)} if "adapt_steps" in self.history else {}),
        }


def finish_prediction(amp: np.ndarray, phase: np.ndarray, mag: np.ndarray, measured: np.ndarray | None = None,
                      threshold: float = SUPPORT_THRESHOLD) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Network output → (object in data units, support, χ², LLK_free) for one pattern.

    amp, phase : (z, y, x) float, the network's output; mag : (z, y, x) √counts.
    """
    from .physics.forward import far_field, support_from_amplitude
    from .physics.metrics import chi2, free_mask, poisson_llk

    # float32 throughout with float64 sums: it runs twice per averaged pattern in the watch
    # service, where the complex128 version took ≈20 ms a call
    meas = None if measured is None else np.asarray(measured, bool)
    support = support_from_amplitude(amp, threshold)
    rho = _complex(np.where(support, amp, 0).astype(np.float32), np.asarray(phase, np.float32))
    F = np.abs(far_field(rho)).astype(np.float32, copy=False)
    mag32 = np.asarray(mag, np.float32)
    Fm, Mm = (F.ravel(), mag32.ravel()) if meas is None else (F[meas], mag32[meas])
    Fm64 = Fm.astype(np.float64)
    den = float(Fm64 @ Fm64)
    s = float(Fm64 @ Mm.astype(np.float64)) / den if den > 0 else 0.0
    obj = rho * np.float32(s)
    Fs = F * np.float32(s)
    c2 = chi2(Fs, mag32, meas)
    free = free_mask(mag.shape, measured=meas)
    if free.any():  # unmeasured voxels are never free (free_mask keeps them out)
        lf = poisson_llk(Fs[free].astype(np.float64) ** 2, mag32[free].astype(np.float64) ** 2)
    else:
        lf = float("nan")
    return obj, support, float(c2), float(lf)


BACKENDS = ("torch", "onnx", "auto")
PRECISIONS = ("fp32", "bf16")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), from /proc/cpuinfo:
    elsewhere bfloat16 is emulated and slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class _CpuDevice:
    """The device of the "onnx" backend, shaped like the ``torch.device`` it stands for."""

    type = "cpu"
    index = None

    def __str__(self) -> str:
        return "cpu"

    __repr__ = __str__


_CPU = _CpuDevice()


def _cuda_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded (so torch might see a GPU), without importing torch."""
    return os.path.exists("/proc/driver/nvidia/version")


class Predictor:
    """A loaded network, ready to invert batches of patterns.

    model : checkpoint path (None: the shipped model). device : "cpu", "cuda", ...
    batch_size : patterns per forward pass.
    symmetries : K, the network's answer is the aligned mean over K symmetric copies of
        each pattern (:mod:`autophase.model.symmetry`); 1 is a single pass.
    average_above : χ²; > 0 averages only the patterns whose single pass fits the data
        worse than this (:meth:`predict`); 0 averages every pattern.
    compile : run the network through ``torch.compile`` (inductor). The first batch pays a
        one-off compile (≈10 s for the shipped model on 2 CPU cores), after which a batch of
        8 runs ≈1.6× faster; worth it from a few dozen patterns on. Every batch is padded to
        ``batch_size`` so that one compiled shape serves all.
    backend : "torch" (default), "onnx" — the same weights exported to ONNX and run by ONNX
        Runtime on the CPU, without importing torch (:mod:`autophase.model.portable`; the
        one-shot command's choice, where importing torch costs more than the network) —
        or "auto": "onnx" when the network would run on the CPU uncompiled and ONNX
        Runtime is installed, else "torch". ``backend`` says which one runs; ``net`` is the
        torch module (None on "onnx" until something needs torch: :meth:`compile`,
        ``predict(adapt=…)``).
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 8,
                 symmetries: int | None = None, compile: bool = False,
                 average_above: float = DEFAULT_AVERAGE_ABOVE, backend: str = "torch",
                 echo=None):
        from .model.symmetry import SYMMETRIES

        if symmetries is not None and not 1 <= int(symmetries) <= len(SYMMETRIES):  # before the model loads
            raise InputError(f"--symmetries: the network is averaged over 1 to {len(SYMMETRIES)} symmetric "
                             f"copies of each pattern, got {symmetries}")
        if not average_above >= 0:
            raise InputError(f"--average-above: a χ² ≥ 0 (0: always average), got {average_above}")
        self.average_above = float(average_above)
        if backend not in BACKENDS:
            raise InputError(f"--backend: one of {', '.join(BACKENDS)}, got {backend!r}")
        self.path = resolve_model(model)
        self.batch_size = max(1, int(batch_size))
        self.compiled = False
        self.net = None
        on_cpu = device == "cpu" or (device is None and not _cuda_driver_present())
        if backend == "onnx" and not (on_cpu and not compile):
            raise InputError("--backend onnx: ONNX Runtime runs the network on the CPU, uncompiled "
                             f"(got device {device or 'cuda'}{', --compile' if compile else ''})")
        from .model import portable

        if backend == "onnx" and not portable.available():
            raise InputError("--backend onnx: onnxruntime is not installed (pip install onnxruntime)")
        self.backend = "onnx" if backend == "onnx" or (backend == "auto" and on_cpu and not compile
                                                        and portable.available()) else "torch"
        if self.backend == "onnx":
            try:
                self.portable = portable.load_portable(self.path, echo)
            except ImportError as e:  # no graph yet, and exporting one needs onnx (and torch)
                if backend == "onnx":
                    raise InputError(f"--backend onnx: {self.path} has no exported graph yet and exporting one "
                                     f"needs {e.name or 'onnx'} (pip install onnx)") from None
                self.backend = "torch"
        if self.backend == "onnx":
            self.device = _CPU
            self.precision = "fp32"
            self.meta = dict(self.portable.meta, path=str(self.path))
            self.size = self.portable.size
        else:
            self._load_torch(device)
            if compile:
                self.compile()
        # None: the model's own K (a network fine-tuned in the measured frame alone answers
        # best there: autophase.beamline.finetune), else DEFAULT_SYMMETRIES
        own = self.meta.get("predict_symmetries")
        self.symmetries = int(symmetries if symmetries is not None else own if own in range(1, len(SYMMETRIES) + 1)
                              else DEFAULT_SYMMETRIES)
        train = self.meta.get("train") or {}
        self.threshold = float(train.get("threshold_end", SUPPORT_THRESHOLD))
        self.meta["support_threshold"] = self.threshold
        self.meta["symmetries"] = self.symmetries
        self.meta["average_above"] = self.average_above

    def _load_torch(self, device: str | None = None) -> None:
        """The torch network on ``device`` (default: CUDA when available); backend "torch"."""
        import torch

        from .model.checkpoint import load_model
        from .phasing.checks import ParamError, check_device

        try:  # one line, before anything loads: not a CUDA traceback
            check_device("device", device, "torch")
        except ParamError as e:
            raise e.for_option("--device") from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net, self.meta = load_model(self.path, self.device)
        # channels-last 3D: oneDNN's fast layout, ~1.6× at batch 8 on a 2-core CPU (bench_inference)
        self.net = self.net.to(memory_format=torch.channels_last_3d)
        self.size = self.net.config.size
        self.backend = "torch"
        self.precision = "fp32"

    def set_precision(self, precision: str) -> None:
        """Run the torch network in ``precision``: "fp32", or "bf16" — weights and
        activations bfloat16 (inputs cast on the way in), the decoders' last outputs and
        everything after them float32. Call before :meth:`compile`."""
        import torch

        if precision not in PRECISIONS:
            raise InputError(f"--precision: one of {', '.join(PRECISIONS)}, got {precision!r}")
        self._need_torch()
        if self.compiled:
            raise RuntimeError("set_precision() must come before compile()")
        self.net = self.net.to(torch.bfloat16 if precision == "bf16" else torch.float32)
        self.precision = precision
        self.meta["precision"] = precision

    def _need_torch(self) -> None:
        """Switch an "onnx" predictor to the torch network on the CPU (for compile/adapt)."""
        if self.backend != "torch":
            meta = self.meta
            self._load_torch("cpu")
            self.meta = {**meta, **self.meta}

    def compile(self) -> None:
        """From now on run the network through ``torch.compile`` (see the class docstring)."""
        import torch

        self._need_torch()
        if not self.compiled:
            self.net = torch.compile(self.net, dynamic=False)
            self.compiled = True

    def _forward(self, mags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on (N, S, S, S) float32 magnitudes, ``batch_size`` at a time → amp, phase."""
        if self.backend == "onnx":
            out = [self.portable(np.ascontiguousarray(mags[i:i + self.batch_size])[:, None])
                   for i in range(0, len(mags), self.batch_size)]
            return np.concatenate([a for a, _ in out]), np.concatenate([p for _, p in out])
        import torch

        amps, phases = [], []
        with torch.inference_mode():
            for i in range(0, len(mags), self.batch_size):
                chunk = mags[i:i + self.batch_size]
                n = len(chunk)
                if self.compiled and n < self.batch_size:  # one shape, one compile
                    chunk = np.concatenate([chunk, np.zeros((self.batch_size - n, *chunk.shape[1:]), chunk.dtype)])
                # always the same strides: a (1, …) view of a pattern has batch stride 0 and a
                # stacked batch does not; a compiled network guards on strides, so the two
                # recompiled (the second graph outside the service's freezing: eager speed)
                dt = torch.bfloat16 if self.precision == "bf16" else torch.float32
                x = torch.empty((len(chunk), 1, *chunk.shape[1:]), dtype=dt, device=self.device)
                x = x.contiguous(memory_format=torch.channels_last_3d)
                x[:, 0] = torch.from_numpy(np.ascontiguousarray(chunk, np.float32)).to(self.device)
                a, p = self.net(x)
                amps.append(a[:n].float().cpu().numpy())
                phases.append(p[:n].float().cpu().numpy())
        return np.concatenate(amps), np.concatenate(phases)

    def network_output(self, mags: np.ndarray, symmetries: int | None = None,
                       identity: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """CNN alone on (N, S, S, S) magnitudes → amplitude, phase (N, S, S, S) float32, seconds.

        With K = ``symmetries`` (default: the predictor's) > 1 each pattern goes through the
        network as K symmetric copies and the answers are averaged
        (:mod:`autophase.model.symmetry`); the time includes the passes and the averaging.
        ``identity``: the single-pass (amp, phase) of these patterns, already computed —
        only the K − 1 other copies then run.
        """
        from .model.symmetry import SYMMETRIES, apply, average

        K = self.symmetries if symmetries is None else int(symmetries)
        mags = np.asarray(mags, np.float32)
        if mags.ndim == 3:
            mags = mags[None]
        if mags.ndim != 4 or mags.shape[1:] != (self.size,) * 3:
            raise InputError(f"the network takes ({self.size}, {self.size}, {self.size}) patterns, got "
                             f"{mags.shape[1:] if mags.ndim == 4 else mags.shape}")
        t0 = time.perf_counter()
        if K == 1:
            amp, ph = identity if identity is not None else self._forward(mags)
        else:
            group = SYMMETRIES[:K]
            todo = group[1:] if identity is not None else group
            amp = np.empty(mags.shape, np.float32)
            ph = np.empty(mags.shape, np.float32)
            # the copies of several patterns stream through full batches: batch 8 runs ~1.6×
            # faster per pattern than batch 4 on a 2-core CPU, and a compiled network pads any
            # short batch (≤ 8 batches' worth of copies in memory at a time)
            per = max(1, 8 * self.batch_size // len(todo))
            for i0 in range(0, len(mags), per):
                chunk = mags[i0:i0 + per]
                a, p = self._forward(np.stack([apply(m, g) for m in chunk for g in todo]))
                for j in range(len(chunk)):
                    answers = [_complex(a[j * len(todo) + k], p[j * len(todo) + k]) for k in range(len(todo))]
                    if identity is not None:
                        answers.insert(0, _complex(identity[0][i0 + j], identity[1][i0 + j]))
                    rho = average(answers, group)
                    amp[i0 + j], ph[i0 + j] = np.abs(rho), np.angle(rho)
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return amp, ph, time.perf_counter() - t0

    def predict(self, mags: np.ndarray, measured: Sequence[np.ndarray] | None = None,
                sources: Sequence[str] | None = None, refine: int = 0,
                refinement: Refinement | None = None, adapt: int = 0,
                adapt_lr: float | None = None) -> list[Prediction]:
        """Invert (N, S, S, S) √counts; ``refine`` K > 0 adds K ER iterations per pattern.

        With ``average_above`` > 0 every pattern first gets one pass; only those whose χ²
        exceeds it get the other K − 1 symmetric copies and the average. ``seconds_nn``
        is the whole network stage (both rounds and the χ² that decides) over N.
        ``adapt`` J > 0 first takes J gradient steps of a copy of the network on each
        pattern alone (physics loss, :mod:`autophase.model.adapt`; the loaded weights stay)
        and predicts with that copy in one pass (no symmetry averaging: the copy was fitted
        to the pattern as given); ``seconds_nn`` then includes the steps.
        """
        mags = np.asarray(mags, np.float32)
        if mags.ndim == 3:
            mags = mags[None]
        if adapt or adapt_lr is not None:
            from .model.adapt import DEFAULT_ADAPT_LR, check_adapt

            adapt, adapt_lr = check_adapt(adapt, DEFAULT_ADAPT_LR if adapt_lr is None else adapt_lr)
            if adapt:
                self._need_torch()
                return self._predict_adapted(mags, measured, sources, refine, refinement, adapt, adapt_lr)
        t0 = time.perf_counter()
        adaptive = self.symmetries > 1 and self.average_above > 0
        amp, ph, _ = self.network_output(mags, symmetries=1 if adaptive else None)
        meas = [None if measured is None else measured[i] for i in range(len(mags))]
        done = [finish_prediction(amp[i], ph[i], mags[i], meas[i], self.threshold) for i in range(len(mags))]
        averaged = np.full(len(mags), self.symmetries > 1 and not adaptive)
        if adaptive:
            hard = [i for i, d in enumerate(done) if not d[2] <= self.average_above]  # NaN χ²: average too
            if hard:
                a, p, _ = self.network_output(mags[hard], identity=(amp[hard], ph[hard]))
                for k, i in enumerate(hard):
                    done[i] = finish_prediction(a[k], p[k], mags[i], meas[i], self.threshold)
                    averaged[i] = True
        dt = time.perf_counter() - t0
        out = []
        for i, (obj, sup, c2, lf) in enumerate(done):
            p = Prediction(obj, sup, c2, lf, source=(sources[i] if sources else ""), model=self.meta,
                           seconds_nn=dt / len(mags), symmetries=self.symmetries if averaged[i] else 1)
            if refine > 0:
                p = refine_prediction(p, mags[i], meas[i], refine, refinement)
            out.append(p)
        return out


    def _predict_adapted(self, mags, measured, sources, refine, refinement, steps: int, lr: float) -> list[Prediction]:
        """:meth:`predict` with each pattern's own adapted copy of the network (``predict(adapt=…)``)."""
        import torch

        from .model.adapt import adapt_network

        # the copy was fitted to the pattern as given: its own single answer, not an average
        # with symmetric copies it was not fitted to
        net, compiled, sym, out = self.net, self.compiled, self.symmetries, []
        self.symmetries = 1
        try:
            for i in range(len(mags)):
                m = None if measured is None else measured[i]
                ad = adapt_network(net, mags[i], m, steps, lr, self.threshold, device=self.device)
                self.net, self.compiled = ad.net.to(memory_format=torch.channels_last_3d), False
                p = self.predict(mags[i:i + 1], None if m is None else [m], sources[i:i + 1] if sources else None,
                                 refine, refinement)[0]
                p.seconds_nn += ad.seconds
                p.history = {**p.history, "adapt_steps": steps, "adapt_lr": lr, "adapt_chi2": ad.losses,
                             "adapt_seconds": ad.seconds}
                out.append(p)
        finally:
            self.net, self.compiled, self.symmetries = net, compiled, sym
        return out


def _complex(amp: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """amp·e^{iφ} as complex64 (float32 cos/sin: half the time of a complex128 exp)."""
    out = np.empty(amp.shape, np.complex64)
    out.real = amp * np.cos(phase)
    out.imag = amp * np.sin(phase)
    return out


@dataclass
class RefinementRuns:
    """Every ER run the refinement made for one pattern, before one is kept.

    runs : [(outline, start phase, shrink-wrap threshold)] — ("network", "network", t) first,
        then the runs on the data's outline (:meth:`Refinement.outline_runs`) when made.
    results : the runs' :class:`~autophase.phasing.PhasingResult`, in that order.
    volume_ratio : |data's outline| / |network's first support| (nan when not computed).
    network_chi2 : the network's answer's χ² (what ``outline_chi2`` is compared with).
    """

    runs: list
    results: list
    volume_ratio: float
    network_chi2: float = float("nan")


def refinement_runs(p: Prediction, mag: np.ndarray, measured: np.ndarray | None, iterations: int,
                    how: Refinement, engine: str = "cpu", device: str | None = None) -> RefinementRuns:
    """The ER runs of :func:`refine_prediction`, every one kept (the choice is
    :meth:`Refinement.kept`). Each run is deterministic given its start, so the runs a
    refinement with a higher ``outline_ratio`` makes are the first of these."""
    try:
        from .phasing import phase_each
    except ImportError as e:  # pragma: no cover - phasing is part of the package
        raise RuntimeError(f"--refine needs autophase.phasing ({e})") from None

    first = how.start_support(p.object, p.support)
    kw = dict(schedule=f"{int(iterations)}*ER", shrink_wrap_every=how.shrink_wrap_every,
              sw_threshold=how.sw_threshold, sw_sigma=how.sw_sigma, engine=engine, device=device)
    # (start, support, outline, phase, shrink-wrap threshold) of every run: the network's
    # answer on its own outline, then, where the pattern's autocorrelation disagrees with it on
    # the volume or the network's answer fits badly (or always, ratio 1), the runs on the data's
    # outline (the volumes first: the placement only where they are made); the phase-free start
    # may run at two thresholds (Refinement.outline_runs)
    starts = [(p.object, first, "network", "network", how.sw_threshold)]
    ratio = float("nan")
    if how.outline_ratio > 0:
        from .outline import autocorrelation_outline, autocorrelation_starts, volume_ratio

        data = autocorrelation_outline(mag, measured)
        ratio = volume_ratio(data, first)
        if how.wants_second_outline(ratio, p.chi2):
            alts = autocorrelation_starts(p.object, first, mag, measured, data, how.outline_phases())
            by_phase = {alt.phase: alt for alt in alts}
            starts += [(by_phase[ph].init, by_phase[ph].support, "autocorrelation", ph, t)
                       for ph, t in how.outline_runs()]
    # side by side on CPU threads (about half the time of one after another on two cores),
    # as one batch on the torch engine
    results = phase_each(mag, measured, starts=[(r[0], r[1]) for r in starts],
                         thresholds=[r[4] for r in starts], **kw)
    return RefinementRuns([r[2:] for r in starts], results, ratio, float(p.chi2))


def refine_prediction(p: Prediction, mag: np.ndarray, measured: np.ndarray | None, iterations: int,
                      refinement: Refinement | None = None, engine: str = "cpu",
                      device: str | None = None) -> Prediction:
    """K ER iterations from the prediction, from its thresholded support (the paper's refinement),
    and, as ``refinement`` says, from the data's outline too; one run kept (:meth:`Refinement.kept`).

    ``refinement`` (default :class:`Refinement`) says how the support starts and is updated;
    ``engine``/``device`` which phasing engine runs them (``"torch"`` with a CUDA device
    keeps them on the GPU, :mod:`autophase.phasing`).
    """
    how = refinement or Refinement()
    t0 = time.perf_counter()
    made = refinement_runs(p, mag, measured, iterations, how, engine=engine, device=device)
    k = how.kept(made.results, [t for *_, t in made.runs])
    res, (outline, start_phase, start_t) = made.results[k], made.runs[k]
    return Prediction(res.object, res.support, float(res.chi2), float(res.llk_free), source=p.source,
                      model=p.model, refine_iterations=int(iterations), refinement=how,
                      seconds_nn=p.seconds_nn, symmetries=p.symmetries,
                      seconds_refine=time.perf_counter() - t0, history=dict(res.history), outline=outline,
                      start_phase=start_phase, start_sw_threshold=float(start_t))


def write_prediction(p: Prediction, out: str | os.PathLike, plot: bool = True,
                     intensity: np.ndarray | None = None, unmeasured: np.ndarray | None = None) -> Path:
    """``out`` (.npz, or .cxi + .vti + strain, atomically; :mod:`autophase.outputs`) and a PNG."""
    from .outputs import write_reconstruction

    out = Path(out)
    d = p.to_npz_dict()
    scalars = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()
               if k not in ("object", "support", "chi2_history", "adapt_chi2")}
    how = f"NN + {p.refine_iterations} ER" if p.refine_iterations else "NN alone"
    write_reconstruction(out, p.object, p.support, {"program": "autophase predict", **scalars},
                         history=p.history or None,
                         arrays={"chi2_history": d["chi2_history"],
                                 **({"adapt_chi2": d["adapt_chi2"]} if "adapt_chi2" in d else {})},
                         input_path=p.source or None, intensity=intensity, unmeasured=unmeasured, plot=plot,
                         title=f"{Path(p.source).name}: {how} (model {p.model.get('version', '?')}), "
                               f"χ² {p.chi2:.4g}, LLK_free {p.llk_free:.4g}")
    return out
