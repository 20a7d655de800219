"""Beamline data handling: raw scans → network input (prep), lab-frame geometry,
reconstructions → strain (postprocess), and augmentation of a few measured patterns for
fine-tuning (augment, finetune). Measured-data code, not an unstable API: it was
``autophase.experimental`` until 2026-12."""
