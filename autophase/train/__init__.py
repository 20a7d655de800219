"""Unsupervised physics-aware training: loss, data, trainer (see docs/training.md)."""
