"""Export a training checkpoint as a shipped model: weights + provenance, no optimiser state.

    python -m autophase.model.export runs/train/best.pt \\
        [--results results.json] [--dest autophase/models/default.pt]

writes ``default.pt`` (network config, weights, the training command, data description,
epoch/step, last epoch's validation and trivial-answer losses), ``default.onnx`` (the same
network for ONNX Runtime, :mod:`autophase.model.portable`) and ``default.json`` beside
it (the same provenance plus, with ``--results``, the held-out figures of
``autophase evaluate``), both atomically. ``autophase predict`` then uses it by default.
Optimiser and scheduler state are dropped: the shipped file is ~1/3 of a checkpoint
(1.8 MB for a width-8 network, 7.1 MB for the shipped width-16 one).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..atomic import write_json
from .checkpoint import file_sha256, read_checkpoint, save_checkpoint

__all__ = ["export_model"]

DEFAULT_DEST = Path(__file__).resolve().parents[1] / "models" / "default.pt"
_KEEP = ("network", "model", "train", "epoch", "step", "best", "data", "command", "engine", "world",
         "autophase_version", "val_indices")


def export_model(ckpt: str | os.PathLike, dest: str | os.PathLike = DEFAULT_DEST,
                 results: str | os.PathLike | None = None, commands: list[str] | None = None,
                 note: str | None = None) -> tuple[Path, Path]:
    """Write ``dest`` (.pt) and ``dest`` with .json; returns both paths.

    ``commands``: the full sequence that produced the model (simulate, train, resumes,
    evaluate), recorded in the JSON; ``note``: free text (e.g. "preliminary").
    """
    ck = read_checkpoint(ckpt)
    slim = {k: ck[k] for k in _KEEP if k in ck}
    hist = ck.get("history") or []
    # a shipped file re-exported (e.g. one brought back from a GPU node) keeps its record
    slim["last_epoch"] = hist[-1] if hist else ck.get("last_epoch", {})
    dest = Path(dest)
    save_checkpoint(dest, slim)
    info: dict[str, Any] = {k: v for k, v in slim.items() if k not in ("model", "val_indices")}
    info.update({"file": dest.name, "sha256": file_sha256(dest), "bytes": dest.stat().st_size,
                 "exported_from": str(ckpt), "n_val_indices": len(slim.get("val_indices", []))})
    if commands:
        info["commands"] = list(commands)
    if note:
        info["note"] = note
    if results:
        r = json.loads(Path(results).read_text())
        info["evaluation"] = {k: r[k] for k in ("data", "held_out", "n", "symmetries", "average_above", "compiled",
                                                 "refine_iterations", "refinement", "phasing_iterations",
                                                 "summary") if k in r}
    # the one-shot predict runs this graph; it records dest's SHA-256, so a stale one is never
    # used. Where onnx is not installed (a GPU node's bare Python) the graph is left out:
    # predict exports it to its cache on first use, or this export is rerun where onnx is.
    try:
        import onnx  # noqa: F401
    except ImportError:
        print(f"export: onnx is not installed: {dest.with_suffix('.onnx').name} not written", file=sys.stderr)
    else:
        from .portable import export_onnx

        export_onnx(dest, dest.with_suffix(".onnx"))
    js = write_json(dest.with_suffix(".json"), info, indent=2, default=str)
    return dest, js


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autophase.model.export", description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--dest", default=str(DEFAULT_DEST))
    ap.add_argument("--results", help="results .json of `autophase evaluate` to record beside the model")
    ap.add_argument("--command", action="append", dest="commands", metavar="CMD",
                    help="a command of the sequence that made the model (repeat, in order)")
    ap.add_argument("--note", help="free text stored in the JSON")
    a = ap.parse_args(argv)
    pt, js = export_model(a.checkpoint, a.dest, a.results, a.commands, a.note)
    print(f"export: {pt} ({pt.stat().st_size / 1e6:.1f} MB) and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
