"""What a simulated run holds: counts, shapes and photon statistics, and a picture of it.

:func:`summarize` reads only the manifest and the shards' attributes; :func:`montage`
reads a few magnitudes and (it is an evaluation tool) their truths through
:func:`~autophase.data.truth.read_truth`, and draws one row per sample:

    log10(1 + counts) through the Bragg peak (z, y, x slices)
    | amplitude | through the crystal's centre (central 32³)  (z, y, x slices)
    phase inside the support (amplitude > 10 %), its own symmetric colour range

Faceted outlines in the amplitude, smooth phases, and fringes with streaks normal to the
facets in the patterns are what a healthy run looks like.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .manifest import RUN_CONFIG, VDS, load_manifest
from .shards import MAGNITUDE, open_shard
from .truth import read_truth

__all__ = ["summarize", "format_summary", "montage"]


def _stats(v) -> dict:
    a = np.asarray(v, np.float64)
    if a.size == 0:
        return {}
    return {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max()),
            "mean": float(a.mean())}


def summarize(run_dir: str | os.PathLike) -> dict:
    """Counts, shapes and statistics of a run (manifest and shard attributes only)."""
    d = Path(run_dir)
    m = load_manifest(d)
    samples = m["samples"]
    shapes = set()
    for s in m["shards"]:
        f = open_shard(d / s["file"])
        try:
            shapes.add(tuple(f[MAGNITUDE].shape[1:]))
            if f[MAGNITUDE].shape[0] != s["count"]:
                raise InputError(f"{d / s['file']}: {f[MAGNITUDE].shape[0]} rows, manifest says {s['count']}")
        finally:
            f.close()
    photons = [s["photons"] for s in samples]
    iters = [s["relax"]["iterations"] for s in samples if s["relax"]["method"] == "lammps"]
    drops = [s["relax"]["energy_drop_eV"] / s["n_atoms"] for s in samples
             if s["relax"]["method"] == "lammps" and s["relax"]["energy_drop_eV"] is not None]
    return {
        "run_dir": str(d),
        "config": m["config"],
        "n_crystals": m["n_crystals"],
        "n_samples": m["n_samples"],
        "samples_per_crystal": m["samples_per_crystal"],
        "n_shards": len(m["shards"]),
        "bytes": sum(s["bytes"] for s in m["shards"]),
        "shape": sorted(shapes),
        "vds": (d / VDS).is_file(),
        "photons": _stats(photons),
        "log10_photons": _stats(np.log10(photons)),
        "counts": _stats([s["counts"] for s in samples]),
        "atoms": _stats([s["n_atoms"] for s in samples]),
        "facets": _stats([s["n_facets"] for s in samples]),
        "bin_lu": _stats([s["bin_lu"] for s in samples]),
        "relax_iterations": _stats(iters),
        "relax_drop_eV_per_atom": _stats(drops),
    }


def format_summary(s: dict) -> str:
    c = s["config"]
    lines = [
        f"run        {s['run_dir']}  ({RUN_CONFIG}: relax={c['relax']}, size={c['size_cells']} cells, "
        f"seed={c['seed']}, rotations={c['rotations']})",
        f"crystals   {s['n_crystals']}   patterns {s['n_samples']} ({s['samples_per_crystal']} per crystal)"
        f"   shards {s['n_shards']} ({s['bytes'] / 2**20:.1f} MiB)   virtual dataset: "
        f"{'yes' if s['vds'] else 'MISSING'}",
        f"shape      {', '.join('×'.join(map(str, sh)) for sh in s['shape'])} float32 magnitudes (√counts)",
    ]
    p, lp, k = s["photons"], s["log10_photons"], s["counts"]
    lines.append(f"photons    min {p['min']:.3g}  median {p['median']:.3g}  max {p['max']:.3g}  "
                 f"(log10: mean {lp['mean']:.2f})   detected counts median {k['median']:.3g}")
    a, fa, b = s["atoms"], s["facets"], s["bin_lu"]
    lines.append(f"atoms      min {a['min']:.0f}  median {a['median']:.0f}  max {a['max']:.0f}   facets "
                 f"{fa['min']:.0f}–{fa['max']:.0f}   bin {b['min']:.3f}–{b['max']:.3f} lattice units")
    if s["relax_iterations"]:
        it, dr = s["relax_iterations"], s["relax_drop_eV_per_atom"]
        lines.append(f"relaxation iterations median {it['median']:.0f} (max {it['max']:.0f}); energy drop "
                     f"median {dr['median'] * 1e3:.2f} meV/atom")
    return "\n".join(lines)


def _centre_slices(vol: np.ndarray, centre) -> list[np.ndarray]:
    z, y, x = (int(round(c)) for c in centre)
    return [vol[z], vol[:, y], vol[:, :, x]]


def montage(run_dir: str | os.PathLike, png: str | os.PathLike, n: int = 4,
            indices: list[int] | None = None) -> Path:
    """Write a PNG of ``n`` samples (evenly spread, or ``indices``): patterns, amplitudes, phases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(run_dir)
    m = load_manifest(d)
    total = m["n_samples"]
    if indices is None:
        indices = sorted(set(np.linspace(0, total - 1, min(n, total)).round().astype(int).tolist()))
    rows = len(indices)
    fig, axes = plt.subplots(rows, 9, figsize=(18, 2.15 * rows + 0.6), squeeze=False)
    names = ("z", "y", "x")
    for r, idx in enumerate(indices):
        s = m["samples"][idx]
        shard = m["shards"][s["shard"]]
        f = open_shard(d / shard["file"])
        try:
            mag = np.asarray(f[MAGNITUDE][s["row"]], np.float64)
        finally:
            f.close()
        t = read_truth(d, idx)
        obj = t["object"][16:48, 16:48, 16:48]
        amp = np.abs(obj)
        sup = t["support"][16:48, 16:48, 16:48]
        com = np.array(np.nonzero(sup)).mean(axis=1) if sup.any() else np.array([16, 16, 16])
        logc = np.log10(1.0 + mag ** 2)
        for j, sl in enumerate(_centre_slices(logc, (32, 32, 32))):
            ax = axes[r, j]
            ax.imshow(sl, cmap="magma", vmin=0, vmax=logc.max(), origin="lower")
            ax.set_title(f"#{idx} log counts ({names[j]})" if j == 0 else f"({names[j]})", fontsize=8)
        for j, sl in enumerate(_centre_slices(amp / amp.max(), com)):
            ax = axes[r, 3 + j]
            ax.imshow(sl, cmap="gray", vmin=0, vmax=1, origin="lower")
            ax.set_title(f"amplitude ({names[j]})", fontsize=8)
        ph = np.where(sup, np.angle(obj), np.nan)
        # 99th percentile: a few low-density corner voxels would otherwise set the scale
        lim = max(float(np.nanpercentile(np.abs(ph), 99)) if sup.any() else 0.1, 0.05)
        for j, sl in enumerate(_centre_slices(ph, com)):
            ax = axes[r, 6 + j]
            im = ax.imshow(sl, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
            ax.set_title(f"phase ±{lim:.2f} rad ({names[j]})", fontsize=8)
        fig.colorbar(im, ax=axes[r, 8], fraction=0.046, pad=0.02)
        axes[r, 0].set_ylabel(f"{s['photons']:.2g} ph\n{s['n_facets']} facets\n{s['n_atoms']} atoms",
                              fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    c = m["config"]
    fig.suptitle(f"{d.name}: {m['n_samples']} patterns, relax={c['relax']}, size={c['size_cells']} cells "
                 "— diffraction (log10 1+counts), amplitude and [111] phase (central slices)", fontsize=10)
    fig.tight_layout()
    out = Path(png)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return out
