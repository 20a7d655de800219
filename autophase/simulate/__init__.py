"""Physics-informed training data: faceted, strained (optionally LAMMPS-relaxed) fcc gold
crystals voxelised to 32³ complex objects and their noisy 64³ diffraction patterns.

Floors: :mod:`.crystal` (atoms and facets) → :mod:`.strain` (displacement fields) →
:mod:`.relax` (LAMMPS EAM minimisation) → :mod:`.voxelize` (density, [111] phase, FFT,
Poisson) → :mod:`.pipeline` (one crystal, seeded by its index) → :mod:`.run` (MPI ranks
writing shards through :mod:`autophase.data.shards`).

Run it as ``autophase simulate --n-crystals N --out DIR`` or under
``mpiexec -n R autophase simulate …`` (same data whatever R).
"""

import sys as _sys
import types as _types


class _Simulate(_types.ModuleType):
    """``autophase.simulate(n_crystals, out, ...)`` is :func:`autophase.api.simulate`.

    The package and the top-level API call share one name; a module cannot be called,
    so the package's class gains ``__call__`` (module ``__class__`` assignment, allowed
    since Python 3.5) instead of one name shadowing the other.
    """

    def __call__(self, n_crystals, out, **kwargs):
        from ..api import simulate

        return simulate(n_crystals, out, **kwargs)


_sys.modules[__name__].__class__ = _Simulate
