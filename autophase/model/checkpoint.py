"""Checkpoints: one file holds the network's config and weights plus whatever training adds.

A checkpoint is a ``torch.save`` dict::

    {"format": "autophase-checkpoint-1",
     "network": NetworkConfig as a dict,
     "model": state_dict (unwrapped: no "module." prefixes),
     ...}                                  # trainer state: optimizer, epoch, history, ...

It is written to a hidden ``.NAME.part-PID`` and renamed (:mod:`autophase.atomic`), so a killed run leaves
either the previous complete checkpoint or the new one, never half a file.

The **model version** that every prediction carries is the first 16 hex digits of the
file's SHA-256: two outputs with the same version came from the same weights.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..errors import InputError
from .network import AutoPhaseNet, NetworkConfig

from .digest import file_sha256  # re-exported: the checkpoint's identity

__all__ = ["FORMAT", "save_checkpoint", "read_checkpoint", "load_model", "file_sha256"]

FORMAT = "autophase-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (must hold "network" and "model") to ``path``."""
    if "network" not in state or "model" not in state:
        raise ValueError("a checkpoint needs 'network' (config dict) and 'model' (state_dict)")
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict; any problem is an InputError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint file")
    try:
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code to run.
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{p}: not a readable checkpoint ({msg})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise InputError(f"{p}: not an autophase checkpoint (format {ck.get('format') if isinstance(ck, dict) else '?'})")
    return ck


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[AutoPhaseNet, dict[str, Any]]:
    """The network of a checkpoint, in eval mode on ``device``, and its metadata.

    Metadata: ``path``, ``sha256``, ``version`` (sha256[:16]), ``network`` (config dict),
    ``epoch``, ``step`` and ``train`` (the training config) when the checkpoint came from
    the trainer.
    """
    ck = read_checkpoint(path)
    try:
        net = AutoPhaseNet(NetworkConfig.from_dict(ck["network"]))
        net.load_state_dict(ck["model"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: checkpoint does not match the network ({str(e).splitlines()[0]})") from None
    sha = file_sha256(path)
    meta = {"path": str(path), "sha256": sha, "version": sha[:16], "network": ck["network"],
            "epoch": ck.get("epoch"), "step": ck.get("step"), "train": ck.get("train"),
            "predict_symmetries": ck.get("predict_symmetries")}
    return net.to(device).eval(), meta
