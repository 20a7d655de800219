"""The resolved configuration of a simulation run: what defines the data, nothing else.

It is saved as ``run.json`` in the output directory before anything is written. A
re-run into the same directory must resolve to the same configuration (it then resumes);
anything else is refused, so one directory never mixes two datasets. The number of MPI
ranks is deliberately *not* part of it: the data do not depend on it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..strict import strict_from_dict
from .crystal import DEFAULT_CELLS, check_size
from .domain import DomainConfig
from .relax import RelaxSettings

__all__ = ["FORMAT_VERSION", "SimulationConfig", "parse_photons"]

FORMAT_VERSION = 1
RELAX_METHODS = ("none", "lammps")


def parse_photons(text: str) -> tuple[float, float]:
    """``"1e8"`` → (1e8, 1e8); ``"1e7:1e9"`` → (1e7, 1e9). Raises ValueError if malformed."""
    parts = str(text).split(":")
    if len(parts) not in (1, 2):
        raise ValueError(f"photons must be LO or LO:HI, got {text!r}")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"photons must be numbers (LO or LO:HI), got {text!r}") from None
    lo, hi = vals[0], vals[-1]
    return lo, hi


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated dataset.

    n_crystals  : crystals to simulate (each gives 1 + ``rotations`` patterns).
    seed        : run seed; crystal i draws from SeedSequence(seed, spawn_key=(i, stream)).
    relax       : "none" or "lammps" (EAM energy minimisation, :mod:`.relax`).
    photons_min, photons_max : total expected photons per pattern, drawn log-uniformly
                  (equal → fixed). Measured scans hold 1e7–1e9.
    rotations   : extra random rotations of each crystal's atoms (augmentation).
    size_cells  : edge of the starting cube, fcc unit cells (49 ≈ 20 nm of gold).
    shard_size  : crystals per shard file; shard k holds crystals [k·S, (k+1)·S).
    max_strain  : the strain budget (1 %); see :mod:`.strain`.
    relax_*     : LAMMPS ``minimize`` settings (:class:`.relax.RelaxSettings`).
    domain      : None (the default: the data this simulator always made) or a
                  :class:`.domain.DomainConfig` of randomised knobs (:mod:`.domain`). Only
                  when set does it appear in ``run.json``, so runs made before it existed
                  resume unchanged.
    """

    n_crystals: int
    seed: int = 0
    relax: str = "none"
    photons_min: float = 1e7
    photons_max: float = 1e9
    rotations: int = 0
    size_cells: int = DEFAULT_CELLS
    shard_size: int = 64
    max_strain: float = 0.01
    relax_etol: float = RelaxSettings.etol
    relax_ftol: float = RelaxSettings.ftol
    relax_maxiter: int = RelaxSettings.maxiter
    relax_maxeval: int = RelaxSettings.maxeval
    format_version: int = FORMAT_VERSION
    domain: DomainConfig | None = None

    def __post_init__(self):
        if isinstance(self.domain, dict):
            object.__setattr__(self, "domain", DomainConfig.from_dict(self.domain))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first impossible field."""
        def _int(name, lo, hi=None):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
                rng = f"≥ {lo}" if hi is None else f"in [{lo}, {hi}]"
                raise ValueError(f"{name} must be an integer {rng}, got {v!r}")

        _int("n_crystals", 1)
        _int("seed", 0)
        _int("rotations", 0, 1000)
        _int("shard_size", 1)
        _int("relax_maxiter", 1)
        _int("relax_maxeval", 1)
        check_size(self.size_cells)
        if self.relax not in RELAX_METHODS:
            raise ValueError(f"relax must be one of {RELAX_METHODS}, got {self.relax!r}")
        lo, hi = self.photons_min, self.photons_max
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"photons must satisfy 0 < LO ≤ HI (finite), got {lo:g}:{hi:g}")
        if not 0 <= self.max_strain < 0.2:
            raise ValueError(f"max_strain must be in [0, 0.2), got {self.max_strain}")
        if not (self.relax_etol >= 0 and self.relax_ftol >= 0):
            raise ValueError("relax tolerances must be ≥ 0")
        if self.domain is not None and not isinstance(self.domain, DomainConfig):
            raise ValueError(f"domain must be a DomainConfig or None, got {type(self.domain).__name__}")
        if self.format_version != FORMAT_VERSION:
            raise ValueError(f"format_version {self.format_version} is not {FORMAT_VERSION}")

    # --- derived -------------------------------------------------------------------
    @property
    def samples_per_crystal(self) -> int:
        return 1 + self.rotations

    @property
    def n_samples(self) -> int:
        return self.n_crystals * self.samples_per_crystal

    @property
    def n_shards(self) -> int:
        return -(-self.n_crystals // self.shard_size)

    def shard_crystals(self, k: int) -> range:
        """The crystals of shard k: [k·S, min((k+1)·S, N))."""
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.n_crystals))

    @property
    def relax_settings(self) -> RelaxSettings:
        return RelaxSettings(self.relax_etol, self.relax_ftol, self.relax_maxiter, self.relax_maxeval)

    # --- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("domain")
        if self.domain is not None:
            d["domain"] = self.domain.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SimulationConfig":
        """Strict: unknown keys are errors (a typo must not silently become a default)."""
        return strict_from_dict(cls, d, "simulation")
