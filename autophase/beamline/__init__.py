"""Experimental data: raw scans → network input (prep), reconstructions → strain (postprocess),
and augmentation of a few real patterns for fine-tuning (augment)."""
