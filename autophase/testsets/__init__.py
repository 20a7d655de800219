"""Test data from outside the project's simulator: a second generator and one interface to three sources.

* :mod:`.generator` — independently written crystals (shapes, phase fields, Poisson noise).
* :mod:`.sources` — ``load_source(name, n_items, seed)`` for "simulator", "generator2", "scan54".
"""
