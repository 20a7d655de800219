"""The trained network as an ONNX graph, run by ONNX Runtime: the same weights, no torch.

A one-shot ``autophase predict`` on a CPU spends more time importing torch (≈1 s) and
running the network eagerly than iterative phasing spends on 600 iterations. The network
is a fixed graph of 3D convolutions, so it is exported once to ONNX (opset 17, dynamic
batch) and run by ONNX Runtime's CPU provider, which imports in about a tenth of torch's
time and needs no compile step. Nothing is approximated: the graph holds the checkpoint's
float32 weights, and the tests hold the two runtimes' outputs to each other.

Which file serves which checkpoint: every exported graph records the SHA-256 of the
checkpoint it came from (``autophase.checkpoint_sha256`` in the ONNX metadata) and the
checkpoint's metadata (``autophase.meta``, JSON), so a graph is never used for weights it
does not hold. It is looked for beside the checkpoint (``default.onnx`` ships beside
``default.pt``), then in the user cache (``~/.cache/autophase/onnx/<sha[:16]>.onnx``),
where :func:`portable_for` exports it on first use (torch is needed that once).

Arrays: input (N, 1, S, S, S) float32 √counts (normalised inside the graph, as in the
network); outputs amplitude, phase (N, S, S, S) float32.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .digest import file_sha256

__all__ = ["SHA_KEY", "META_KEY", "checkpoint_sha256", "available", "find_portable", "export_onnx",
           "portable_for", "PortableNetwork"]

SHA_KEY = "autophase.checkpoint_sha256"
META_KEY = "autophase.meta"
OPSET = 17


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a checkpoint file (its ``version`` is the first 16 characters)."""
    return file_sha256(path)


def available() -> bool:
    """Whether ONNX Runtime can be imported here."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _cache_path(sha: str) -> Path:
    from ..paths import cache_dir

    return cache_dir("onnx", f"{sha[:16]}.onnx")


def _recorded_sha(path: Path) -> str | None:
    """The checkpoint SHA-256 an exported graph records (None: unreadable or not ours)."""
    import onnxruntime as ort

    try:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a corrupt cache file is just a miss
        return None
    return s.get_modelmeta().custom_metadata_map.get(SHA_KEY)


def find_portable(checkpoint: str | os.PathLike, sha: str | None = None) -> Path | None:
    """An exported graph of exactly this checkpoint, beside it or in the cache, else None."""
    ck = Path(checkpoint)
    sha = sha or checkpoint_sha256(ck)
    for cand in (ck.with_suffix(".onnx"), _cache_path(sha)):
        if cand.is_file() and _recorded_sha(cand) == sha:
            return cand
    return None


def export_onnx(checkpoint: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """Export a checkpoint's network to ONNX at ``dest`` (default: the user cache); the path.

    Uses torch's TorchScript-based exporter (one trace of a batch-1 input; the batch axis
    is marked dynamic) and records the checkpoint's SHA-256 and metadata in the graph.
    """
    import onnx
    import torch

    from ..atomic import atomic_path
    from .checkpoint import load_model

    net, meta = load_model(checkpoint, "cpu")
    size = net.config.size
    dest = Path(dest) if dest is not None else _cache_path(meta["sha256"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros((1, 1, size, size, size), dtype=torch.float32)
    x[0, 0, size // 2, size // 2, size // 2] = 1.0  # a non-zero peak: the input normalisation divides by it
    with atomic_path(dest, suffix=".onnx") as tmp, warnings.catch_warnings():
        # the tracer's notes on the input check and constant folding are about the export, not for users
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(tmp), input_names=["mag"], output_names=["amplitude", "phase"],
                          dynamic_axes={"mag": {0: "batch"}, "amplitude": {0: "batch"}, "phase": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
        model = onnx.load(str(tmp))
        for k, v in ((SHA_KEY, meta["sha256"]), (META_KEY, json.dumps(meta, default=str))):
            model.metadata_props.add(key=k, value=v)
        onnx.save(model, str(tmp))
    return dest


def portable_for(checkpoint: str | os.PathLike, echo=None) -> Path:
    """The exported graph of ``checkpoint``: found, or exported to the cache now (≈3 s once)."""
    sha = checkpoint_sha256(checkpoint)
    found = find_portable(checkpoint, sha)
    if found is not None:
        return found
    if echo:
        echo(f"exporting {checkpoint} to ONNX once (cached as {_cache_path(sha)})")
    return export_onnx(checkpoint)


class PortableNetwork:
    """An exported graph in an ONNX Runtime session: ``net(x) -> (amp, phase)`` numpy.

    ``meta`` is the checkpoint metadata the graph records (as :func:`load_model` gives
    it); ``size`` the pattern edge S. ``threads``: intra-op threads (default: the CPUs
    this process may use).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or len(os.sched_getaffinity(0)))
        so.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise InputError(f"{path}: not a loadable ONNX graph ({str(e).splitlines()[0]})") from None
        custom = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in custom:
            raise InputError(f"{path}: an ONNX graph without autophase metadata (export it with "
                             f"autophase.model.portable.export_onnx)")
        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads(custom[META_KEY])
        self.size = int(self.meta["network"]["size"])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 5 or x.shape[1:] != (1,) + (self.size,) * 3:
            raise ValueError(f"expected input (N, 1, {self.size}, {self.size}, {self.size}), got {x.shape}")
        amp, phase = self.session.run(None, {"mag": x})
        return amp, phase
