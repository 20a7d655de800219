"""A whole cohere-core (numpy) phasing process, the peer of ``autophase phase PATTERN -o x.npz --no-plot``.

Loads a pattern (.npz with ``data`` = counts, or .npy of counts; Bragg peak at the
centre), phases √counts with cohere-core's numpy backend (ER/HIO, Gaussian
shrink-wrap), and saves the complex image as .npy. It imports only numpy and cohere, so
the process's cost is cohere's own, as a user running cohere on one pattern would pay it.
Used by ``benchmarks/bench_sources.py`` for the whole-process speed row::

    python benchmarks/cohere_process.py pattern.npz image.npy --schedule "3*(20*ER+160*HIO+20*ER)"
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pattern")
    ap.add_argument("output")
    ap.add_argument("--schedule", default="3*(20*ER+160*HIO+20*ER)")
    ap.add_argument("--sw-every", type=int, default=20)
    ap.add_argument("--sw-threshold", type=float, default=0.2)
    ap.add_argument("--sw-sigma", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np

    if not os.path.isfile(args.pattern):
        print(f"{args.pattern}: no such file", file=sys.stderr)
        return 2
    if args.pattern.endswith(".npz"):
        with np.load(args.pattern) as z:
            counts = z["data"]
    else:
        counts = np.load(args.pattern)
    import cohere_core.controller.phasing as coh

    params = {"algorithm_sequence": args.schedule, "hio_beta": args.beta, "shrink_wrap_type": "GAUSS",
              "shrink_wrap_trigger": [1, args.sw_every], "shrink_wrap_threshold": args.sw_threshold,
              "shrink_wrap_gauss_sigma": args.sw_sigma, "initial_support_area": [0.5, 0.5, 0.5]}
    with tempfile.TemporaryDirectory() as wd:
        path = os.path.join(wd, "data.npy")
        np.save(path, np.sqrt(np.clip(counts, 0, None)).astype(np.float32))
        np.random.seed(args.seed)
        with contextlib.redirect_stdout(io.StringIO()):
            rec = coh.create_rec(params, path, "np", -1, debug=True)
            rec.iterate()
            img = np.asarray(rec.get_image())
    np.save(args.output, np.conj(np.fft.fftshift(img)).astype(np.complex64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
