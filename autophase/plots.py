"""Pictures of reconstructions: the first thing a beamline user looks at.

:func:`plot_reconstruction` draws, for a complex object (z, y, x), the three central
slices of the amplitude (top row) and of the phase inside the support (bottom row,
cyclic colour map, grey outside), plus the error curve of the iterations when given.
Written atomically (temp file + rename) with the Agg backend: safe on headless nodes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path

__all__ = ["plot_reconstruction", "save_figure"]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:  # savefig reads the format from the suffix
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _crop_box(support: np.ndarray, margin: int = 4) -> tuple[slice, ...]:
    if not support.any():
        return tuple(slice(None) for _ in support.shape)
    nz = np.nonzero(support)
    return tuple(slice(max(0, int(i.min()) - margin), min(n, int(i.max()) + 1 + margin))
                 for i, n in zip(nz, support.shape))


def plot_reconstruction(obj: np.ndarray, support: np.ndarray | None, path: str | os.PathLike,
                        history: dict | None = None, title: str = "") -> Path:
    """Central slices of amplitude and phase (+ χ² against iteration) to a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obj = np.asarray(obj)
    amp = np.abs(obj)
    sup = support if support is not None else amp > 0.1 * amp.max()
    # the global phase is arbitrary: remove the support's mean phase so that colours read
    # as deviations from the crystal's average (and do not sit on the ±π wrap)
    if sup.any():
        obj = obj * np.exp(-1j * np.angle(obj[sup].sum()))
    box = _crop_box(sup)
    # centre the slices on the support's centre of mass, where the crystal is
    com = [int(round(c)) for c in np.argwhere(sup).mean(0)] if sup.any() else [n // 2 for n in obj.shape]
    curve = history is not None and len(history.get("chi2", [])) > 0
    mosaic = [["a0", "a1", "a2"], ["p0", "p1", "p2"]]
    if curve:
        for row in mosaic:
            row.append("err")
    fig, axd = plt.subplot_mosaic(mosaic, figsize=(3.3 * len(mosaic[0]), 6.4), layout="constrained",
                                  width_ratios=[1, 1, 1, 1.3] if curve else None)
    names = [("z", "y–x"), ("y", "z–x"), ("x", "z–y")]
    vmax = float(amp.max()) or 1.0
    # phase is meaningless where there is no crystal: show it where |ρ| > 10 % of max
    shown = sup & (amp > 0.1 * vmax)
    for k, (ax_name, plane) in enumerate(names):
        idx = [slice(None)] * 3
        idx[k] = com[k]
        keep = tuple(b for j, b in enumerate(box) if j != k)
        a2 = amp[tuple(idx)][keep]
        p2 = np.angle(obj[tuple(idx)][keep])
        s2 = shown[tuple(idx)][keep]
        ax = axd[f"a{k}"]
        im = ax.imshow(a2, cmap="gray", vmin=0, vmax=vmax, origin="lower")
        ax.set_title(f"amplitude, {ax_name} = {com[k]} ({plane})", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        if k == 2:
            fig.colorbar(im, ax=ax, shrink=0.8)
        ax = axd[f"p{k}"]
        im = ax.imshow(np.ma.masked_where(~s2, p2), cmap="twilight", vmin=-np.pi, vmax=np.pi,
                       origin="lower")
        ax.set_facecolor("0.85")
        ax.set_title(f"phase (rad), {ax_name} = {com[k]}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
        if k == 2:
            fig.colorbar(im, ax=ax, shrink=0.8)
    if curve:
        ax = axd["err"]
        chi = np.asarray(history["chi2"], float)
        algos = history.get("algorithm", [])
        it = np.arange(1, len(chi) + 1)
        ax.semilogy(it, chi, lw=1.2, color="k")
        if len(algos) == len(chi):
            hio = np.array([a == "HIO" for a in algos])
            ax.fill_between(it, chi.min(), chi.max(), where=hio, color="tab:orange", alpha=0.15,
                            step="mid", label="HIO")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel("iteration")
        ax.set_ylabel("χ² (eq. 2)")
        ax.set_title(f"final χ² = {chi[-1]:.4g}", fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
