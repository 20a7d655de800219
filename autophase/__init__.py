"""autophase: AutoPhaseNN and iterative phase retrieval for 3D Bragg CDI, with an HPC workflow.

The Python API (:mod:`autophase.api`), loaded on first use so that ``import autophase``
stays quick and torch-free until a network is needed:

* :func:`phase` — iterative phase retrieval of a pattern (counts in, like the CLI)
* :class:`Predictor` — the network (the shipped model by default), :meth:`Predictor.predict`
* :func:`simulate` — simulated training data (HDF5 shards), MPI-parallel under mpiexec
* :func:`load_pattern`, :func:`prep` — measured patterns and raw 34-ID-C frames
"""
__version__ = "0.1.0"

__all__ = ["__version__", "phase", "Predictor", "simulate", "load_pattern", "prep"]

# ``simulate`` is the subpackage itself, made callable (see autophase/simulate/__init__.py).
_LAZY = {"phase": "api", "load_pattern": "api", "prep": "api", "Predictor": "predict", "simulate": None}


def __getattr__(name: str):
    # PEP 562: import the submodule the first time one of its names is asked for.
    if name in _LAZY:
        import importlib

        where = _LAZY[name]
        module = importlib.import_module(f".{where or name}", __name__)
        value = module if where is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'autophase' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
