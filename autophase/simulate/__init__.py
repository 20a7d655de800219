"""Physics-informed training data: faceted, strained (optionally LAMMPS-relaxed) fcc gold
crystals voxelised to 32³ complex objects and their noisy 64³ diffraction patterns.

Floors: :mod:`.crystal` (atoms and facets) → :mod:`.strain` (displacement fields) →
:mod:`.relax` (LAMMPS EAM minimisation) → :mod:`.voxelize` (density, [111] phase, FFT,
Poisson) → :mod:`.pipeline` (one crystal, seeded by its index) → :mod:`.run` (MPI ranks
writing shards through :mod:`autophase.data.shards`).

Run it as ``autophase simulate --n-crystals N --out DIR`` or under
``mpiexec -n R autophase simulate …`` (same data whatever R).
"""
