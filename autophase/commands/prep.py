"""``autophase prep RAW -o OUT.cxi``: raw detector frames → a centred, binned 64³ pattern.

RAW is a 34-ID-C scan directory (TIFF frames; dark, white field and SPEC file found
beside them or given by flags) or one file holding the stacked frames (.npy .npz .h5
.nxs .cxi .tif; ``file.h5::/entry/data/data`` names an HDF5 dataset). Writes OUT.cxi
(intensity + mask, as ``autophase phase`` and ``predict`` read it) and OUT's stem +
``_prep.png`` (central slices, log scale, before and after). Each step prints one line.

    autophase prep ../shared/data/aps34idc-scan54/frames -o scan54.cxi
    autophase prep frames/ --spec beamtime.spec --scan 54 --size 64 --oversampling 3 -o s54.cxi
"""
from __future__ import annotations

import argparse

NAME = "prep"
HELP = "raw detector frames (34-ID-C TIFFs + dark/white/SPEC, or a stack file) → centred, binned 64³ pattern (.cxi)"


def _binning(text: str) -> tuple[int, int, int]:
    parts = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("give one or three integers, e.g. 3,2,1")
    return tuple(parts)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("raw", help="scan directory of TIFF frames, or a stacked-frames file "
                               "(.npy .npz .h5[::dataset] .tif)")
    p.add_argument("-o", "--output", required=True, help="output pattern, .cxi")
    p.add_argument("--spec", help="SPEC file (default: the *.spec beside the frames, if exactly one)")
    p.add_argument("--scan", type=int, help="scan number (default: from the frame names, _S0054_)")
    p.add_argument("--dark", help="dark-field TIFF (default: *dark*.tif beside the frames)")
    p.add_argument("--white", help="white-field TIFF (default: *white*/*flat*.tif beside the frames)")
    p.add_argument("--dataset", help="HDF5 dataset path when RAW is an HDF5/NeXus file")
    p.add_argument("--size", type=int, default=64, help="output side (default 64, the network input)")
    p.add_argument("--oversampling", type=float, default=3.0, help="target oversampling ratio (default 3)")
    p.add_argument("--binning", type=_binning, help="force the binning, e.g. 3,2,1 (z, y, x), instead of choosing it")
    p.add_argument("--centre", choices=("max", "com"), default="max", help="Bragg peak: smoothed max or centre of mass")
    p.add_argument("--no-aliens", action="store_true", help="skip alien removal")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import InputError
    from ..beamline.prep import PrepConfig, plot_prep, prepare
    from ..io.cxi import write_pattern_cxi
    from ..io.raw34idc import read_raw

    out = Path(args.output)
    if out.suffix.lower() != ".cxi":
        raise InputError(f"{out}: output must end in .cxi")
    cfg = PrepConfig(size=args.size, oversampling=args.oversampling, binning=args.binning, centre=args.centre,
                     remove_aliens=not args.no_aliens)
    raw = read_raw(args.raw, dataset=args.dataset, spec=args.spec, scan=args.scan, dark=args.dark,
                   white=args.white)
    res = prepare(raw, cfg, echo=lambda s: print(f"prep: {s}", flush=True))
    meta = dict(res.metadata, command=" ".join(["autophase"] + sys.argv[1:]) if sys.argv else "autophase prep")
    write_pattern_cxi(out, res.intensity, res.mask_bits, metadata=meta)
    msg = f"prep: wrote {out}"
    if not args.no_plot:
        png = plot_prep(res, out.with_name(out.stem + "_prep.png"),
                        title=f"{Path(str(args.raw)).name} → {out.name}: binning {res.binning}, "
                              f"kept {100 * res.counts_kept / res.counts_corrected:.1f} % of counts")
        msg += f" and {png}"
    print(msg)
    return 0
