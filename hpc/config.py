"""Typed, frozen run configuration, loaded strictly from a TOML file under ``jobs/``.

A run config has one table per component (``extra`` in a stage's table: further options of
its command, passed verbatim, e.g. ``extra = ["--width", "4"]``)::

    [run]         name, seed, root                     → RunSection
    [site]        where and how: scheduler, nodes, env → SiteSection  ([site.env] a table)
    [simulate]    MPI simulation                       → SimulateSection
    [train]       DDP / Horovod training               → TrainSection
    [evaluate]    held-out evaluation                  → EvaluateSection
    [benchmarks]  benchmark suites                     → BenchmarksSection
    [report]      the report                           → ReportSection
    [scaling]     optional strong/weak scaling study   → ScalingSection

Loading is strict: an unknown table or key, a missing required key, or a value of the
wrong type is an :class:`~autophase.errors.InputError` naming the file and the key.
:func:`dumps` writes a config back as TOML with every default filled in (the *resolved*
config kept in each run directory); ``load(dumps(cfg)) == cfg``.

Example::

    cfg = load("jobs/local.toml")
    cfg.train.ranks            # nodes × ranks_per_node
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from autophase.errors import InputError

__all__ = [
    "RunSection", "SiteSection", "SimulateSection", "TrainSection", "EvaluateSection",
    "BenchmarksSection", "ReportSection", "ScalingSection", "WorkflowConfig",
    "load", "loads", "dumps", "SITES",
]

SITES = ("local", "polaris", "perlmutter", "slurm")
_WALLTIME = re.compile(r"^\d{1,3}:[0-5]\d:[0-5]\d$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class RunSection:
    """Identity of a run: its directory is ``<root>/<name>/``; ``seed`` feeds every stage."""

    name: str
    seed: int = 0
    root: str = "runs"


@dataclass(frozen=True)
class SiteSection:
    """Where the stages run and how the scheduler is asked for nodes.

    ``driver``: ``"job"`` runs the Parsl driver inside the batch job that holds the nodes
    (the whole-workflow script; NERSC's recommendation), ``"login"`` runs it on a login
    node and lets Parsl submit its own blocks through PBS Pro / Slurm.
    ``queue`` is the PBS queue on Polaris and the Slurm QOS on Perlmutter.
    ``"slurm"`` is any Slurm cluster (e.g. the one-node cluster of ``scripts/slurm_local.sh``)
    through Perlmutter's code path, with ``account``, ``queue``, ``constraint`` and GPUs
    optional. ``exclusive``: Parsl's blocks ask for whole nodes (``sbatch --exclusive``); a
    one-node cluster, where the worker block and the MPI block share the node, sets it false.
    ``nodes`` is the size of the whole-workflow allocation (≥ every stage's nodes).
    ``setup`` are shell lines run before any stage (``module load``, ``conda activate``);
    ``env`` is exported in every job and task (NCCL / libfabric settings).
    """

    name: Literal["local", "polaris", "perlmutter", "slurm"]
    driver: Literal["job", "login"] = "job"
    account: str = ""
    queue: str = ""
    walltime: str = "01:00:00"
    nodes: int = 1
    filesystems: tuple[str, ...] = ()
    constraint: str = ""
    cpus_per_node: int = 2
    gpus_per_node: int = 0
    interface: str = ""
    max_workers: int = 1
    exclusive: bool = True
    setup: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SimulateSection:
    """``autophase simulate`` over ``ranks`` MPI ranks spread evenly over ``nodes``.

    Each rank writes whole shards of ``shard_size`` crystals, so ``n_crystals / shard_size``
    should be at least ``ranks`` for every rank to have work."""

    n_crystals: int
    ranks: int = 1
    nodes: int = 1
    relax: Literal["none", "lammps"] = "none"
    size: Optional[int] = None
    photons: Optional[str] = None
    shard_size: Optional[int] = None
    extra: tuple[str, ...] = ()

    @property
    def ranks_per_node(self) -> int:
        return self.ranks // self.nodes


@dataclass(frozen=True)
class TrainSection:
    """``autophase train`` over ``nodes × ranks_per_node`` ranks (one rank per GPU on GPU sites).

    ``keep``: a path outside the run directory where the run's checkpoint is copied after every
    train stage, stopped or finished, and from which a run directory without one resumes (a
    long job that outlives the machine it started on; see :class:`hpc.stages.Stage`).
    """

    epochs: int
    batch_size: int
    engine: Literal["none", "ddp", "horovod"] = "ddp"
    nodes: int = 1
    ranks_per_node: int = 1
    lr: Optional[float] = None
    init: Optional[str] = None
    keep: Optional[str] = None
    extra: tuple[str, ...] = ()

    @property
    def ranks(self) -> int:
        return self.nodes * self.ranks_per_node


@dataclass(frozen=True)
class EvaluateSection:
    """``autophase evaluate`` on held-out shards: ``n`` patterns, ``refine`` ER iterations
    after the network, ``phasing`` iterations for the iterative baseline."""

    n: Optional[int] = None
    refine: int = 50
    phasing: int = 600
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchmarksSection:
    """Suites ``benchmarks/bench_<suite>.py`` (``--quick`` if set, then ``extra``, given to every
    suite), each an htex task: they run side by side when the site has the workers."""

    suites: tuple[str, ...] = ()
    quick: bool = True
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportSection:
    """``autophase report`` over every JSON the run produced."""

    enabled: bool = True


@dataclass(frozen=True)
class ScalingSection:
    """A scaling study of ``stage`` at each count N in ``ranks``: N ranks fill one node up to
    ``ranks_per_node``, beyond it ``N / ranks_per_node`` full nodes (see :meth:`layout`).

    Simulate: ``work`` crystals in all (strong), ``work`` per base count (weak), of ``size``
    unit cells (default: the simulate stage's size).
    Train, on the run's dataset, ``epochs`` epochs per point: strong keeps the global batch
    (``train.batch_size`` × base count) and so the total work fixed, each rank taking its
    share; weak keeps the per-rank batch and ``steps_per_epoch`` steps, so work ∝ ranks.
    """

    stage: Literal["simulate", "train"] = "simulate"
    modes: tuple[str, ...] = ("strong", "weak")
    ranks: tuple[int, ...] = (1, 2)
    ranks_per_node: int = 1
    work: int = 8
    size: Optional[int] = None
    epochs: int = 1
    steps_per_epoch: int = 10
    enabled: bool = True

    def layout(self, ranks: int) -> tuple[int, int]:
        """``(nodes, ranks per node)`` of a point with ``ranks`` ranks."""
        if ranks <= self.ranks_per_node:
            return 1, ranks
        return ranks // self.ranks_per_node, self.ranks_per_node


@dataclass(frozen=True)
class WorkflowConfig:
    """The whole run config. ``source`` is the file it came from (not dumped)."""

    run: RunSection
    site: SiteSection
    simulate: SimulateSection
    train: TrainSection
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    benchmarks: BenchmarksSection = field(default_factory=BenchmarksSection)
    report: ReportSection = field(default_factory=ReportSection)
    scaling: Optional[ScalingSection] = None
    source: Optional[str] = field(default=None, compare=False)


_SECTIONS: dict[str, type] = {
    "run": RunSection, "site": SiteSection, "simulate": SimulateSection,
    "train": TrainSection, "evaluate": EvaluateSection, "benchmarks": BenchmarksSection,
    "report": ReportSection, "scaling": ScalingSection,
}
_REQUIRED_SECTIONS = ("run", "site", "simulate", "train")


# ---------------------------------------------------------------------------- loading

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table of strings"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` (from tomllib) against the annotation ``tp``; return it in its typed form."""
    origin = typing.get_origin(tp)
    bad = InputError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        # Optional[X]: TOML has no null, so a present key is always an X.
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is Literal:
        if value not in typing.get_args(tp) or isinstance(value, bool):
            raise bad
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise bad
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config annotation {tp!r}")  # pragma: no cover - programming error


def _build(cls: type, table: Any, source: str, section: str) -> Any:
    if not isinstance(table, dict):
        raise InputError(f"{source}: [{section}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise InputError(f"{source}: [{section}] unknown key '{unknown[0]}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in table:
            kwargs[name] = _coerce(table[name], hints[name], f"{source}: {section}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise InputError(f"{source}: [{section}] missing required key '{name}'")
    return cls(**kwargs)


def loads(text: str, source: str = "<string>") -> WorkflowConfig:
    """Parse and validate a run config from TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{source}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise InputError(f"{source}: unknown table [{unknown[0]}] (known: {', '.join(_SECTIONS)})")
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            raise InputError(f"{source}: missing table [{name}]")
    sections = {name: _build(cls, data[name], source, name)
                for name, cls in _SECTIONS.items() if name in data}
    cfg = WorkflowConfig(**sections, source=source)
    _validate(cfg, source)
    return cfg


def load(path: str | Path) -> WorkflowConfig:
    """Load ``path`` strictly (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such run config") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read run config ({e})") from None
    return loads(text, str(path))


def _validate(cfg: WorkflowConfig, src: str) -> None:
    """Cross-field checks that types alone cannot express."""
    def err(key: str, msg: str) -> InputError:
        return InputError(f"{src}: {key}: {msg}")

    if not _NAME.match(cfg.run.name):
        raise err("run.name", f"{cfg.run.name!r} is not a plain name (letters, digits, . _ -)")
    site = cfg.site
    if not _WALLTIME.match(site.walltime):
        raise err("site.walltime", f"{site.walltime!r} is not HH:MM:SS")
    for key in ("nodes", "cpus_per_node", "max_workers"):
        if getattr(site, key) < 1:
            raise err(f"site.{key}", "must be ≥ 1")
    if site.gpus_per_node < 0:
        raise err("site.gpus_per_node", "must be ≥ 0")
    for k in site.env:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise err("site.env", f"{k!r} is not an environment variable name")
    if site.name == "local":
        if site.nodes != 1:
            raise err("site.nodes", "the local site has exactly one node")
        if site.driver != "job":
            raise err("site.driver", "the local site runs its driver in place ('job')")
    else:
        for key in ("account", "queue"):
            if not getattr(site, key) and site.name != "slurm":
                raise err(f"site.{key}", f"required on {site.name}")
        if site.gpus_per_node < 1 and site.name != "slurm":
            raise err("site.gpus_per_node", f"{site.name} nodes have GPUs; set it (4)")
        if not site.interface:
            raise err("site.interface", f"required on {site.name} (the high-speed network interface)")
    if site.name == "perlmutter" and not site.constraint:
        raise err("site.constraint", "required on perlmutter ('gpu')")

    sim = cfg.simulate
    for key in ("n_crystals", "ranks", "nodes"):
        if getattr(sim, key) < 1:
            raise err(f"simulate.{key}", "must be ≥ 1")
    if sim.ranks % sim.nodes:
        raise err("simulate.ranks", f"{sim.ranks} ranks do not divide evenly over {sim.nodes} nodes")
    for key in ("size", "shard_size"):
        if getattr(sim, key) is not None and getattr(sim, key) < 1:
            raise err(f"simulate.{key}", "must be ≥ 1")
    if sim.photons is not None and not re.match(r"^[0-9.eE+-]+:[0-9.eE+-]+$", sim.photons):
        raise err("simulate.photons", f"{sim.photons!r} is not LO:HI")

    tr = cfg.train
    for key in ("epochs", "batch_size", "nodes", "ranks_per_node"):
        if getattr(tr, key) < 1:
            raise err(f"train.{key}", "must be ≥ 1")
    if tr.engine == "none" and tr.ranks != 1:
        raise err("train.engine", f"'none' trains on one rank, but nodes × ranks_per_node = {tr.ranks}")
    if tr.lr is not None and not tr.lr > 0:
        raise err("train.lr", "must be > 0")
    if site.gpus_per_node and tr.ranks_per_node > site.gpus_per_node:
        raise err("train.ranks_per_node", f"{tr.ranks_per_node} > {site.gpus_per_node} GPUs per node")

    ev = cfg.evaluate
    if ev.n is not None and ev.n < 1:
        raise err("evaluate.n", "must be ≥ 1")
    if ev.refine < 0 or ev.phasing < 0:
        raise err("evaluate", "refine and phasing must be ≥ 0")
    for s in cfg.benchmarks.suites:
        if not re.match(r"^[a-z0-9_]+$", s):
            raise err("benchmarks.suites", f"{s!r} is not a suite name (bench_<name>.py)")

    sc = cfg.scaling
    if sc is not None:
        if not sc.ranks or any(r < 1 for r in sc.ranks):
            raise err("scaling.ranks", "needs one or more counts ≥ 1")
        if sc.ranks_per_node < 1 or any(r > sc.ranks_per_node and r % sc.ranks_per_node for r in sc.ranks):
            raise err("scaling.ranks", f"counts above ranks_per_node={sc.ranks_per_node} must be multiples of it")
        if not sc.modes or any(m not in ("strong", "weak") for m in sc.modes):
            raise err("scaling.modes", "a list of 'strong' and/or 'weak'")
        if sc.work < 1 or sc.epochs < 1 or sc.steps_per_epoch < 1 or (sc.size is not None and sc.size < 1):
            raise err("scaling", "work, epochs and steps_per_epoch must be ≥ 1")

    needed = max(sim.nodes, tr.nodes, sc.layout(max(sc.ranks))[0] if sc else 1)
    if site.nodes < needed:
        raise err("site.nodes", f"{site.nodes} nodes, but a stage needs {needed}")


# ---------------------------------------------------------------------------- dumping

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        # TOML basic strings share JSON's escapes for the characters that matter here.
        import json
        return json.dumps(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")  # pragma: no cover


def dumps(cfg: WorkflowConfig) -> str:
    """The resolved config as TOML: every key, defaults included (``None`` keys omitted)."""
    lines = [f"# resolved run config (from {cfg.source or 'unknown'})"]
    for name in _SECTIONS:
        section = getattr(cfg, name)
        if section is None:
            continue
        lines.append(f"\n[{name}]")
        sub = []
        for f in dataclasses.fields(section):
            v = getattr(section, f.name)
            if v is None:
                continue
            if isinstance(v, dict):
                sub.append((f.name, v))
                continue
            lines.append(f"{f.name} = {_toml_value(v)}")
        for key, table in sub:
            lines.append(f"\n[{name}.{key}]")
            lines.extend(f"{k} = {_toml_value(x)}" for k, x in table.items())
    return "\n".join(lines) + "\n"
