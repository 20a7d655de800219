"""Strong and weak scaling of a stage over rank (or node) counts, through the site's Parsl config.

For each count N in ``scaling.ranks`` (``N / ranks_per_node`` nodes) the stage runs once as
an MPI task of the site's ``mpi`` executor, one point after another so that no two share the
machine, and its wall time T(N) is measured around the launcher (start-up included: that is
what a user waits for).

* **strong** — fixed total work W (``work`` crystals; for training ``epochs`` over the run's
  dataset at a fixed global batch, each of N ranks taking 1/N of it): speedup
  S(N) = T(b)/T(N), efficiency E(N) = S(N)/(N/b);
* **weak** — work ∝ N (``work × N/b`` crystals; for training ``steps_per_epoch`` steps of
  ``train.batch_size`` per rank): throughput thru(N) = W(N)/T(N), weak efficiency
  E_w(N) = thru(N) / ((N/b)·thru(b)),

where b is the smallest count measured (1 rank here; one node of 4 GPUs on a site, with one
GPU reported apart). Each mode is written as a typed result record
(:func:`autophase.bench.record.write_record`, suite ``scaling-<stage>-<mode>``, kind
``scaling``: series of T, throughput, S, E and E_w over ranks — over nodes when every point fills
whole nodes of several ranks — and the headline efficiency at the largest count) to
``<run>/scaling/scaling-<stage>-<mode>.json``; the report plots S and E against the ideal line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import stages
from .config import WorkflowConfig
from .rundir import RunDir
from .stages import Stage

__all__ = ["Point", "plan", "study_files", "summarize", "write"]


@dataclass(frozen=True)
class Point:
    """One measurement to make: ``stage`` at ``ranks`` ranks doing ``work`` units."""

    mode: str
    ranks: int
    work: int
    stage: Stage


def _name(cfg: WorkflowConfig, mode: str, ranks: int) -> str:
    return f"scaling-{cfg.scaling.stage}-{mode}-r{ranks}"


def plan(cfg: WorkflowConfig, run: RunDir) -> list[Point]:
    """Every (mode, count) point of the study, as a stage writing into ``scaling/``."""
    sc = cfg.scaling
    if sc is None or not sc.enabled:
        return []
    base = min(sc.ranks)
    points = []
    for mode in sc.modes:
        for n in sorted(sc.ranks):
            name = _name(cfg, mode, n)
            out = run.out(name)
            factor = n // base if mode == "weak" else 1
            nodes, rpn = sc.layout(n)
            if sc.stage == "simulate":
                work = sc.work * factor
                # Shards are the unit of work of a rank: size them so that every rank of the
                # largest count (strong) or every rank (weak) gets the same number.
                shard = max(1, sc.work // (max(sc.ranks) // base if mode == "strong" else 1) // base)
                st = stages.simulate(cfg, run, n_crystals=work, nodes=nodes, ranks_per_node=rpn,
                                     out=out, name=name, shard_size=shard, size=sc.size)
            else:
                b_global = cfg.train.batch_size * base
                if mode == "strong":  # the same samples per epoch, split over more ranks
                    work = sc.epochs
                    st = stages.train(cfg, run, out=out, ranks_per_node=rpn, nodes=nodes, epochs=sc.epochs,
                                      batch_size=max(1, b_global // n), name=name)
                else:                 # each rank the same steps of the same batch
                    work = sc.epochs * sc.steps_per_epoch * cfg.train.batch_size * n
                    st = stages.train(cfg, run, out=out, ranks_per_node=rpn, nodes=nodes, epochs=sc.epochs,
                                      steps_per_epoch=sc.steps_per_epoch, name=name)
                # A fresh training per point: resuming would time only the missing epochs.
                st = dataclasses.replace(st, resume_file=None)
            points.append(Point(mode, n, work, st))
    return points


def study_files(cfg: WorkflowConfig, run: RunDir) -> list[str]:
    """The JSON records the study writes (one per mode)."""
    sc = cfg.scaling
    if sc is None or not sc.enabled:
        return []
    return [str(run.root / "scaling" / f"scaling-{sc.stage}-{m}.json") for m in sc.modes]


def summarize(mode: str, measured: list[tuple[int, int, float]], ranks_per_node: int = 1) -> dict[str, Any]:
    """Speedup and efficiencies from ``[(ranks, work, seconds), …]``.

    Strong: ``speedup = T_b / T_N``, ``efficiency = speedup / (N/b)``.
    Weak: ``weak_efficiency = thru_N / ((N/b) · thru_b)`` with ``thru = work / T``.
    Both are given for every point either way (the ratio that fits ``mode`` is the headline).
    """
    measured = sorted(measured)
    if not measured or any(t <= 0 for _, _, t in measured):
        raise ValueError("scaling: every point needs a positive time")
    b, w_b, t_b = measured[0]
    thru_b = w_b / t_b
    points = []
    for n, w, t in measured:
        rel = n / b
        thru = w / t
        speedup = t_b / t
        points.append({
            "ranks": n, "nodes": -(-n // ranks_per_node), "work": w, "time_s": t,
            "throughput": thru, "relative_ranks": rel,
            "speedup": speedup, "efficiency": speedup / rel,
            "weak_efficiency": thru / (rel * thru_b),
        })
    return {"mode": mode, "base_ranks": b, "points": points}


def write(cfg: WorkflowConfig, run: RunDir, mode: str, measured: list[tuple[int, int, float]],
          path: str | Path | None = None) -> Path:
    """Write one mode's record (suite ``scaling-<stage>-<mode>``); return its path."""
    from autophase.bench.record import write_record

    sc = cfg.scaling
    results = summarize(mode, measured, sc.ranks_per_node)
    results.update({
        "stage": sc.stage, "site": cfg.site.name, "ranks_per_node": sc.ranks_per_node,
        "work_unit": "crystals" if sc.stage == "simulate" else ("epochs" if mode == "strong" else "samples"),
        "ideal": {"strong": "speedup = N/b, efficiency = 1", "weak": "weak_efficiency = 1"}[mode],
    })
    path = Path(path) if path else run.root / "scaling" / f"scaling-{sc.stage}-{mode}.json"
    return write_record(f"scaling-{sc.stage}-{mode}", results, path)
