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
(defaults: the prediction's own support, shrink-wrapped every 10 iterations at 0.2; on 8
held-out simulated crystals and a network trained 120 steps, 50 ER reached χ² 0.0089 /
complex error 0.083 with shrink-wrap and 0.0217 / 0.125 with the paper's fixed support;
docs/training.md).

Every output names the model it came from (``model_version`` = SHA-256 prefix of the
checkpoint file, and its path). Without ``--model``, the shipped
``autophase/models/default.pt`` is used when it exists.

Example::

    p = Predictor()                                  # the shipped model
    results = p.predict(np.stack([mag1, mag2]))      # (N, 64, 64, 64) √counts
    results[0].object, results[0].chi2
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError

__all__ = ["DEFAULT_MODEL", "SUPPORT_THRESHOLD", "Refinement", "Prediction", "Predictor", "default_model_path",
           "resolve_model", "finish_prediction", "refine_prediction", "write_prediction",
           "add_refinement_arguments", "refinement_from_args"]

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.pt"
SUPPORT_THRESHOLD = 0.1


@dataclass(frozen=True)
class Refinement:
    """How K ER iterations refine a network prediction: the support (the algorithm is ER).

    start_threshold : the first support is |ρ_NN| > start_threshold · max|ρ_NN|, within
        the prediction's own support (so never looser than the model's training cut).
    shrink_wrap_every : J; the support is recomputed every J iterations (0: fixed, the paper).
    sw_threshold, sw_sigma : shrink-wrap S ← (|ρ| ∗ G_σ) > sw_threshold · max (σ in voxels).

    Looser settings lower χ² on simulated crystals but not the phase error, and on the
    measured scan 54 they let a rim of wrapped phase into the support (docs/training.md,
    "Refinement"), so the defaults stay where phasing's are.
    """

    start_threshold: float = SUPPORT_THRESHOLD
    shrink_wrap_every: int = 10
    sw_threshold: float = 0.2
    sw_sigma: float = 1.0

    def start_support(self, obj: np.ndarray, support: np.ndarray) -> np.ndarray:
        """The first support: ``support`` ∩ (|obj| > start_threshold · max|obj|), bool (z, y, x)."""
        from .physics.forward import support_from_amplitude

        return np.asarray(support, bool) & support_from_amplitude(obj, self.start_threshold)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def add_refinement_arguments(p) -> None:
    """The ``--refine-*`` options of ``predict`` and ``evaluate`` (defaults: :class:`Refinement`)."""
    d = Refinement()
    p.add_argument("--refine-shrink-wrap", type=int, default=d.shrink_wrap_every, metavar="J",
                   help=f"shrink-wrap the support every J refinement iterations (default {d.shrink_wrap_every}; "
                        "0: fixed, as in the paper)")
    p.add_argument("--refine-sw-threshold", type=float, default=d.sw_threshold, metavar="T",
                   help=f"shrink-wrap threshold, fraction of the blurred amplitude's maximum (default {d.sw_threshold})")
    p.add_argument("--refine-start-threshold", type=float, default=d.start_threshold, metavar="T",
                   help=f"first support: predicted amplitude > T × its maximum (default {d.start_threshold})")


def refinement_from_args(args) -> Refinement:
    """A :class:`Refinement` from the options of :func:`add_refinement_arguments`, checked."""
    r = Refinement(start_threshold=args.refine_start_threshold, shrink_wrap_every=args.refine_shrink_wrap,
                   sw_threshold=args.refine_sw_threshold)
    if r.shrink_wrap_every < 0 or not 0 <= r.start_threshold < 1 or not 0 < r.sw_threshold < 1:
        raise InputError(f"refinement options out of range (--refine-shrink-wrap ≥ 0, --refine-start-threshold "
                         f"in [0, 1), --refine-sw-threshold in (0, 1)): got {r.shrink_wrap_every}, "
                         f"{r.start_threshold}, {r.sw_threshold}")
    return r


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
    history: dict[str, Any] = field(default_factory=dict)

    def to_npz_dict(self) -> dict[str, Any]:
        return {
            "object": self.object.astype(np.complex64), "support": self.support.astype(bool),
            "chi2": np.float64(self.chi2), "llk_free": np.float64(self.llk_free),
            "model_version": np.str_(self.model.get("version", "")),
            "model_sha256": np.str_(self.model.get("sha256", "")),
            "model_path": np.str_(self.model.get("path", "")),
            "input": np.str_(self.source), "refine_iterations": np.int64(self.refine_iterations),
            **{f"refine_{k}": np.asarray(v) for k, v in (self.refinement.to_dict() if self.refinement else {}).items()},
            "seconds_nn": np.float64(self.seconds_nn), "seconds_refine": np.float64(self.seconds_refine),
            "chi2_history": np.asarray(self.history.get("chi2", []), np.float64),
        }


def finish_prediction(amp: np.ndarray, phase: np.ndarray, mag: np.ndarray, measured: np.ndarray | None = None,
                      threshold: float = SUPPORT_THRESHOLD) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Network output → (object in data units, support, χ², LLK_free) for one pattern.

    amp, phase : (z, y, x) float, the network's output; mag : (z, y, x) √counts.
    """
    from .physics.forward import far_field, support_from_amplitude
    from .physics.metrics import chi2, free_mask, llk_free

    meas = np.ones(mag.shape, bool) if measured is None else np.asarray(measured, bool)
    support = support_from_amplitude(amp, threshold)
    rho = (amp * support * np.exp(1j * phase)).astype(np.complex64)
    F = np.abs(far_field(rho))
    m = np.where(meas, mag, 0).astype(np.float64)
    den = float((F[meas].astype(np.float64) ** 2).sum())
    s = float((F[meas] * m[meas]).sum()) / den if den > 0 else 0.0
    obj = (rho * np.float32(s)).astype(np.complex64)
    Fs = (F * s).astype(np.float32)
    c2 = chi2(Fs, mag.astype(np.float32), meas)
    free = free_mask(mag.shape, measured=meas)
    lf = llk_free(Fs.astype(np.float64) ** 2, m ** 2, free) if free.any() else float("nan")
    return obj, support, float(c2), float(lf)


class Predictor:
    """A loaded network, ready to invert batches of patterns.

    model : checkpoint path (None: the shipped model). device : "cpu", "cuda", ...
    batch_size : patterns per forward pass.
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 8):
        import torch

        from .model.checkpoint import load_model

        self.path = resolve_model(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net, self.meta = load_model(self.path, self.device)
        # channels-last 3D: oneDNN's fast layout, ~1.6× at batch 8 on a 2-core CPU (bench_inference)
        self.net = self.net.to(memory_format=torch.channels_last_3d)
        self.batch_size = max(1, int(batch_size))
        self.size = self.net.config.size
        train = self.meta.get("train") or {}
        self.threshold = float(train.get("threshold_end", SUPPORT_THRESHOLD))
        self.meta["support_threshold"] = self.threshold

    def network_output(self, mags: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """CNN alone on (N, S, S, S) magnitudes → amplitude, phase (N, S, S, S) float32, seconds."""
        import torch

        mags = np.asarray(mags, np.float32)
        if mags.ndim == 3:
            mags = mags[None]
        if mags.ndim != 4 or mags.shape[1:] != (self.size,) * 3:
            raise InputError(f"the network takes ({self.size}, {self.size}, {self.size}) patterns, got "
                             f"{mags.shape[1:] if mags.ndim == 4 else mags.shape}")
        amps, phases = [], []
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(mags), self.batch_size):
                x = torch.from_numpy(mags[i:i + self.batch_size])[:, None].to(self.device)
                x = x.contiguous(memory_format=torch.channels_last_3d)
                a, p = self.net(x)
                amps.append(a.float().cpu().numpy())
                phases.append(p.float().cpu().numpy())
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return np.concatenate(amps), np.concatenate(phases), time.perf_counter() - t0

    def predict(self, mags: np.ndarray, measured: Sequence[np.ndarray] | None = None,
                sources: Sequence[str] | None = None, refine: int = 0,
                refinement: Refinement | None = None) -> list[Prediction]:
        """Invert (N, S, S, S) √counts; ``refine`` K > 0 adds K ER iterations per pattern."""
        mags = np.asarray(mags, np.float32)
        if mags.ndim == 3:
            mags = mags[None]
        amp, ph, dt = self.network_output(mags)
        out = []
        for i in range(len(mags)):
            meas = None if measured is None else measured[i]
            obj, sup, c2, lf = finish_prediction(amp[i], ph[i], mags[i], meas, self.threshold)
            p = Prediction(obj, sup, c2, lf, source=(sources[i] if sources else ""), model=self.meta,
                           seconds_nn=dt / len(mags))
            if refine > 0:
                p = refine_prediction(p, mags[i], meas, refine, refinement)
            out.append(p)
        return out


def refine_prediction(p: Prediction, mag: np.ndarray, measured: np.ndarray | None, iterations: int,
                      refinement: Refinement | None = None) -> Prediction:
    """K ER iterations from the prediction, from its thresholded support (the paper's refinement).

    ``refinement`` (default :class:`Refinement`) says how the support starts and is updated.
    """
    try:
        from .phasing import phase
    except ImportError as e:  # pragma: no cover - phasing is part of the package
        raise RuntimeError(f"--refine needs autophase.phasing ({e})") from None
    how = refinement or Refinement()
    t0 = time.perf_counter()
    res = phase(mag, measured, init=p.object, support=how.start_support(p.object, p.support),
                schedule=f"{int(iterations)}*ER", shrink_wrap_every=how.shrink_wrap_every,
                sw_threshold=how.sw_threshold, sw_sigma=how.sw_sigma)
    return Prediction(res.object, res.support, float(res.chi2), float(res.llk_free), source=p.source,
                      model=p.model, refine_iterations=int(iterations), refinement=how,
                      seconds_nn=p.seconds_nn,
                      seconds_refine=time.perf_counter() - t0, history=dict(res.history))


def write_prediction(p: Prediction, out: str | os.PathLike, plot: bool = True,
                     intensity: np.ndarray | None = None, unmeasured: np.ndarray | None = None) -> Path:
    """``out`` (.npz, or .cxi + .vti + strain, atomically; :mod:`autophase.outputs`) and a PNG."""
    from .outputs import write_reconstruction

    out = Path(out)
    d = p.to_npz_dict()
    scalars = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()
               if k not in ("object", "support", "chi2_history")}
    how = f"NN + {p.refine_iterations} ER" if p.refine_iterations else "NN alone"
    write_reconstruction(out, p.object, p.support, {"program": "autophase predict", **scalars},
                         history=p.history or None, arrays={"chi2_history": d["chi2_history"]},
                         input_path=p.source or None, intensity=intensity, unmeasured=unmeasured, plot=plot,
                         title=f"{Path(p.source).name}: {how} (model {p.model.get('version', '?')}), "
                               f"χ² {p.chi2:.4g}, LLK_free {p.llk_free:.4g}")
    return out
