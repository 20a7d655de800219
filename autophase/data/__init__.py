"""Simulated datasets on disk: HDF5 shards, the manifest, and the readers.

* :mod:`.shards`   — the shard file layout and its atomic writer;
* :mod:`.manifest` — the run directory (``run.json``, ``manifest.json``, virtual dataset);
* :mod:`.dataset`  — :class:`MagnitudeDataset` (training: magnitudes only) and
  :func:`shard_indices`;
* :mod:`.truth`    — :func:`read_truth` (evaluation only; the one path to ``/truth``).

This directory also ships ``demo_pattern.npz``, the bundled demo pattern.
Imports stay light: ``import autophase.data`` does not import torch or h5py.
"""
