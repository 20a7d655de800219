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
where :func:`load_portable` exports it on first use (torch is needed that once).

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

__all__ = ["SHA_KEY", "META_KEY", "available", "find_portable", "export_onnx", "load_portable",
           "PortableNetwork"]

SHA_KEY = "autophase.checkpoint_sha256"
META_KEY = "autophase.meta"
OPSET = 17


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


def _session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session on ``path`` (raises what onnxruntime raises)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or len(os.sched_getaffinity(0)))
    so.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _matching(checkpoint: Path, sha: str, threads: int | None = None):
    """(path, session) of the first exported graph of exactly this checkpoint, beside it or
    in the cache, else None. The session that reads a candidate's recorded SHA-256 is the
    one the caller runs: a graph is opened once."""
    for cand in (checkpoint.with_suffix(".onnx"), _cache_path(sha)):
        if not cand.is_file():
            continue
        try:
            s = _session(cand, threads)
        except Exception:  # noqa: BLE001 - a corrupt cache file is just a miss
            continue
        if s.get_modelmeta().custom_metadata_map.get(SHA_KEY) == sha:
            return cand, s
    return None


def find_portable(checkpoint: str | os.PathLike, sha: str | None = None) -> Path | None:
    """An exported graph of exactly this checkpoint, beside it or in the cache, else None."""
    ck = Path(checkpoint)
    m = _matching(ck, sha or file_sha256(ck), threads=1)
    return None if m is None else m[0]


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


def load_portable(checkpoint: str | os.PathLike, echo=None, threads: int | None = None) -> "PortableNetwork":
    """The exported graph of ``checkpoint`` in a session: found, or exported to the cache
    now (≈3 s once; needs onnx and torch, ImportError without them)."""
    ck = Path(checkpoint)
    sha = file_sha256(ck)
    m = _matching(ck, sha, threads)
    if m is None:
        if echo:
            echo(f"exporting {checkpoint} to ONNX once (cached as {_cache_path(sha)})")
        path = export_onnx(ck)
        m = path, _session(path, threads)
    return PortableNetwork(*m)


class PortableNetwork:
    """An exported graph in an ONNX Runtime session: ``net(x) -> (amp, phase)`` numpy.

    ``meta`` is the checkpoint metadata the graph records (as :func:`load_model` gives
    it), ``checkpoint_sha256`` the checkpoint's digest; ``size`` the pattern edge S.
    ``session``: one already open on ``path``; else one is opened with ``threads``
    intra-op threads (default: the CPUs this process may use).
    """

    def __init__(self, path: str | os.PathLike, session=None, threads: int | None = None):
        if session is None:
            try:
                session = _session(path, threads)
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
                raise InputError(f"{path}: not a loadable ONNX graph ({str(e).splitlines()[0]})") from None
        self.session = session
        custom = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in custom:
            raise InputError(f"{path}: an ONNX graph without autophase metadata (export it with "
                             f"autophase.model.portable.export_onnx)")
        self.path = Path(path)
        self.checkpoint_sha256 = custom.get(SHA_KEY)
        self.meta: dict[str, Any] = json.loads(custom[META_KEY])
        self.size = int(self.meta["network"]["size"])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 5 or x.shape[1:] != (1,) + (self.size,) * 3:
            raise ValueError(f"expected input (N, 1, {self.size}, {self.size}, {self.size}), got {x.shape}")
        amp, phase = self.session.run(None, {"mag": x})
        return amp, phase
