"""Cost of one truth alignment (:func:`autophase.physics.metrics.align_to`) per call.

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 30] [--out PATH]

The symmetry averaging of ``predict`` aligns K − 1 network answers to the first one per
pattern (complex64, the reference's FFT shared), so this is a hot path. Timed on a 64³
(and 32³) strained faceted crystal shifted by a fraction of a voxel, three ways,
interleaved call by call so that a shared machine's drift lands on all alike:

* ``whole_voxel_before`` — the alignment as it was before issue 14 (twin and whole-voxel
  shift by two cross-correlations, ``np.roll``, scale), restated here as the baseline;
* ``upsample_1`` — today's code with ``upsample=1`` (whole voxels only);
* ``upsample_16`` — today's default: the peak refined to 1/16 voxel by a local DFT.

Wall-clock and CPU (process) time medians per call; the CPU time is the steadier of the
two on a loaded machine. Writes benchmarks/results/metrics-cpu.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import scipy.fft as sfft

from autophase.bench.record import write_record
from autophase.physics import pad_object
from autophase.physics.forward import fft_workers
from autophase.physics.metrics import _twin, align_to
from autophase.physics.synthetic import faceted_crystal


def whole_voxel_before(a0: np.ndarray, t: np.ndarray, t_fft: np.ndarray) -> np.ndarray:
    """The pre-issue-14 alignment (twin, integer shift, scale), complex64; returns c·a."""
    w = fft_workers()
    best = None
    for twin in (False, True):
        a = _twin(a0) if twin else a0
        cc = sfft.ifftn(t_fft * np.conj(sfft.fftn(a, workers=w)), workers=w)
        idx = np.unravel_index(int(np.argmax(np.abs(cc))), cc.shape)
        a = np.roll(a, tuple(int(i) for i in idx), axis=(0, 1, 2))
        den = np.vdot(a, a).real
        c = np.vdot(a, t) / den if den > 0 else 0.0
        err = np.linalg.norm(c * a - t) ** 2 / np.linalg.norm(t) ** 2
        if best is None or err < best[0]:
            best = (err, c * a)
    return best[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per variant (interleaved)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/metrics-cpu.json)")
    a = ap.parse_args(argv)
    if a.repeats < 3:
        print(f"--repeats must be >= 3, got {a.repeats}", file=sys.stderr)
        return 2
    res: dict = {"dtype": "complex64", "truth_fft_shared": True, "fft_workers": fft_workers(),
                 "repeats": a.repeats, "sizes": {}}
    for n in (64, 32):
        t = (pad_object(faceted_crystal(32, phase_range=3.0, seed=7)) if n == 64
             else faceted_crystal(32, phase_range=3.0, seed=7)).astype(np.complex64)
        T = sfft.fftn(t, workers=fft_workers())
        shift = np.exp(-2j * np.pi * sum(s * np.fft.fftfreq(m)[tuple(slice(None) if i == d else None
                                                                          for i in range(3))]
                                          for d, (s, m) in enumerate(zip((0.5, 0.25, 1.37), t.shape))))
        est = (0.7 * np.exp(-2.3j) * _twin(sfft.ifftn(T * shift))).astype(np.complex64)
        variants = {
            "whole_voxel_before": lambda: whole_voxel_before(est, t, T),
            "upsample_1": lambda: align_to(est, t, dtype=np.complex64, truth_fft=T, upsample=1).aligned,
            "upsample_16": lambda: align_to(est, t, dtype=np.complex64, truth_fft=T).aligned,
        }
        wall = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        errs = {}
        for k, f in variants.items():  # warm-up, and each variant's error on this case
            al = f()
            errs[k] = float(np.linalg.norm(al - t) ** 2 / np.linalg.norm(t) ** 2)
        for _ in range(a.repeats):
            for k, f in variants.items():
                c0, w0 = time.process_time(), time.perf_counter()
                f()
                wall[k].append(time.perf_counter() - w0)
                cpu[k].append(time.process_time() - c0)
        row = {k: {"wall_ms_median": 1e3 * statistics.median(wall[k]), "wall_ms_min": 1e3 * min(wall[k]),
                   "cpu_ms_median": 1e3 * statistics.median(cpu[k]), "complex_error": errs[k],
                   "wall_ms": [1e3 * x for x in wall[k]], "cpu_ms": [1e3 * x for x in cpu[k]]}
               for k in variants}
        row["cpu_ratio_upsample_16_over_before"] = (row["upsample_16"]["cpu_ms_median"]
                                                    / row["whole_voxel_before"]["cpu_ms_median"])
        res["sizes"][str(n)] = row
        print(f"{n}³: " + " | ".join(f"{k} {v['cpu_ms_median']:.1f} ms cpu, {v['wall_ms_median']:.1f} ms wall, "
                                     f"error {v['complex_error']:.1e}" for k, v in row.items() if isinstance(v, dict)),
              flush=True)
    res["note"] = "2-core machine shared with other jobs when recorded unless stated otherwise: timings are noisy"
    path = write_record("metrics", res, a.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
