"""Which checkpoint to keep: NN + K ER against phasing on held-back patterns of several sources.

The validation loss says how well the network's single pass fits patterns of the training
simulator. What issue 15 asks of a network is something else: that the network's answer,
refined by K ER iterations, fits patterns *from other sources* as well as phasing does.
On the domain-randomised 20k set the two parted: three more epochs lowered the loss by 7 %
and left NN + 50 ER no better on the second generator and worse on scan 54
(docs/training.md). ``autophase train --select-on SPEC`` keeps ``best.pt`` by the second.

A panel is a comma-separated list of ``SOURCE:N:SEED`` (:mod:`autophase.testsets.sources`)::

    generator2:8:2,simulator:8:22,scan54:3

* ``generator2:N:SEED``, ``simulator:N:SEED`` — N crystals of that set;
* ``scan54:N`` — the measured scan, with phasing from N seeds (its reference is their
  median χ²; there is one pattern and no truth).

χ² is scored as the external suite scores every answer
(:func:`autophase.external_suite.score_no_truth`: eq. 2, fitted scale, measured voxels).

Generator 2's set 1 is refused: it is the set issue 15's acceptance figures come from, on
which nothing may be chosen.

Each panel pattern's reference is phasing with its defaults (:func:`autophase.phasing.phase`,
seeded by the item), computed once and kept in ``OUT/selection-reference.json`` (a rerun
or a resumed run reads it; another panel, or other phasing defaults, recompute it). At the end of every
epoch rank 0 scores the epoch's weights through the real prediction path
(:class:`autophase.predict.Predictor`, its defaults, then K ER with
:func:`autophase.predict.judging_refinement`: the default refinement with every start
carrying the network's phase, so that the score is the network's) and reports per source::

    r_i = χ²(NN + K ER)_i / χ²(phasing)_i
    median_ratio = median_i r_i,   within_1.2 = fraction of i with r_i ≤ 1.2

and one figure to keep the best by, lower is better::

    select_score = exp(mean over sources of log median_ratio)

(a geometric mean, so no source outweighs another by its scale).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["PanelEntry", "parse_panel", "SelectionPanel", "REFERENCE_FILE"]

REFERENCE_FILE = "selection-reference.json"
_MEASURED = ("scan54",)


@dataclass(frozen=True)
class PanelEntry:
    """One source of a panel: ``n`` crystals of set ``seed`` (a measured scan: ``n`` phasing seeds)."""

    source: str
    n: int
    seed: int

    def __str__(self) -> str:
        return f"{self.source}:{self.n}" + ("" if self.source in _MEASURED else f":{self.seed}")


def parse_panel(spec: str, option: str = "--select-on") -> list[PanelEntry]:
    """``"generator2:8:2,simulator:8:22,scan54:3"`` → entries; one clear line naming ``option``
    for anything else."""
    from ..testsets.sources import ACCEPTANCE_SETS, SOURCES

    entries: list[PanelEntry] = []
    for part in [p.strip() for p in str(spec).split(",")]:
        bits = part.split(":")
        name = bits[0]
        if name not in SOURCES:
            raise InputError(f"{option}: unknown source {name!r} in {spec!r} (known: {', '.join(SOURCES)})")
        measured = name in _MEASURED
        if len(bits) != (2 if measured else 3):
            form = f"{name}:N" if measured else f"{name}:N:SEED"
            raise InputError(f"{option}: {part!r} should read {form}")
        try:
            n, seed = int(bits[1]), (0 if measured else int(bits[2]))
        except ValueError:
            raise InputError(f"{option}: {part!r}: N and SEED are whole numbers") from None
        if not 1 <= n <= 200 or seed < 0:
            raise InputError(f"{option}: {part!r}: N in 1–200 and SEED ≥ 0")
        if (name, seed) in ACCEPTANCE_SETS and not measured:
            raise InputError(f"{option}: {name} set {seed} is issue 15's acceptance set; choose on another seed")
        if any(e.source == name and e.seed == seed for e in entries):
            raise InputError(f"{option}: {name} set {seed} twice in {spec!r}")
        if measured:  # before any training: not at the first epoch's end
            from ..testsets.sources import CACHE_DIR, SCAN54_RAW

            if not (CACHE_DIR / "scan54.cxi").exists() and not SCAN54_RAW.is_dir():
                raise InputError(f"{option}: {name}: its frames are not at {SCAN54_RAW} "
                                 f"(set AUTOPHASE_SCAN54, or leave {name} out of the panel)")
        entries.append(PanelEntry(name, n, seed))
    return entries


@dataclass
class _Pattern:
    source: str
    name: str
    magnitude: np.ndarray
    measured: np.ndarray
    reference_chi2: float


class SelectionPanel:
    """The panel's patterns and their phasing references (see the module doc).

    spec : the ``--select-on`` text. refine : K, the ER iterations after the network.
    out_dir : where ``selection-reference.json`` is kept (None: not kept).
    """

    def __init__(self, spec: str, refine: int = 50, out_dir: str | os.PathLike | None = None,
                 log=print):
        if not isinstance(refine, int) or refine < 1:
            raise InputError(f"--select-refine: K ≥ 1 ER iterations after the network, got {refine!r}")
        self.entries = parse_panel(spec)
        self.spec = ",".join(str(e) for e in self.entries)
        self.refine = refine
        self.log = log
        self.patterns = self._load(Path(out_dir) / REFERENCE_FILE if out_dir is not None else None)

    def _load(self, cache: Path | None) -> list[_Pattern]:
        import json

        from ..atomic import write_json
        from ..testsets.sources import load_source

        from ..phasing import PhasingParams

        defaults = json.loads(json.dumps(asdict(PhasingParams()), default=str))  # as it reads back
        kept: dict[str, float] = {}
        computed = False
        if cache is not None and cache.exists():
            try:
                d = json.loads(cache.read_text())
                if d.get("spec") == self.spec and d.get("phasing_defaults") == defaults:
                    kept = {str(k): float(v) for k, v in d["reference_chi2"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                kept = {}  # a damaged file is recomputed, not trusted
        t0 = time.perf_counter()
        out: list[_Pattern] = []
        for e in self.entries:
            measured = e.source in _MEASURED
            items = load_source(e.source, e.n, e.seed)
            groups = [items] if measured else [[it] for it in items]  # a scan: one pattern, n seeds
            for g in groups:
                first = g[0]
                name = f"{e.source}" if measured else first.name
                if name not in kept:
                    kept[name] = self.reference_chi2(g)
                    computed = True
                out.append(_Pattern(e.source, name, first.magnitude, first.measured, kept[name]))
        if cache is not None and computed:
            write_json(cache, {"spec": self.spec, "reference": "autophase.phasing.phase defaults, the item's seed; "
                               "a measured scan: the median over its seeds", "phasing_defaults": defaults,
                               "reference_chi2": {p.name: p.reference_chi2 for p in out}})
        self.log(f"select: panel {self.spec}: {len(out)} patterns, phasing references ready "
                 f"in {time.perf_counter() - t0:.0f} s")
        return out

    @staticmethod
    def reference_chi2(items) -> float:
        """Phasing with its defaults on each item (its own seed) → the median χ²."""
        from ..external_suite import phase_scored

        return float(np.median([phase_scored(it.magnitude, it.measured, it.seed)[1]["chi2"] for it in items]))

    def score(self, checkpoint: str | os.PathLike, device: str | None = None) -> dict[str, Any]:
        """NN + K ER from ``checkpoint`` on every panel pattern → the module doc's figures:
        ``select_score`` and per source ``select_<source>_median_ratio``,
        ``select_<source>_within_1.2``; ``select_s`` the seconds it took."""
        from ..external_suite import score_no_truth
        from ..predict import Predictor, judging_refinement, refine_prediction

        t0 = time.perf_counter()
        pred = Predictor(checkpoint, device=device)
        ratios: dict[str, list[float]] = {}
        for p in self.patterns:
            nn = pred.predict(p.magnitude[None], [p.measured])[0]
            r = refine_prediction(nn, p.magnitude, p.measured, self.refine, judging_refinement())
            c2 = score_no_truth(r.object, p.magnitude, p.measured)["chi2"]  # as the external suite scores
            ratios.setdefault(p.source, []).append(c2 / p.reference_chi2)
        out: dict[str, Any] = {}
        logs = []
        for src, rs in ratios.items():
            med = float(np.median(rs))
            out[f"select_{src}_median_ratio"] = med
            out[f"select_{src}_within_1.2"] = float(np.mean([x <= 1.2 for x in rs]))
            logs.append(math.log(med) if med > 0 and math.isfinite(med) else math.inf)
        out["select_score"] = float(math.exp(sum(logs) / len(logs))) if all(map(math.isfinite, logs)) else math.inf
        out["select_s"] = time.perf_counter() - t0
        return out

