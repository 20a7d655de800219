"""The exact command line of every stage, built once from the run config.

A :class:`Stage` is what one step of the graph runs: an ``autophase`` (or benchmark)
command, how many nodes and ranks per node it spans when it is an MPI job, and the files
whose existence proves it finished. The same object feeds the Parsl apps
(:mod:`hpc.workflow`), the batch scripts (:mod:`hpc.batch`) and ``--dry-run``, so the three
can never disagree on what a stage does.

Paths are built from a :class:`~hpc.rundir.RunDir` and the repository root; pass relative
ones (``RunDir("runs/polaris")``, ``Path(".")``) for scripts that ``cd`` into the
submission directory, absolute ones for Parsl workers, whose working directory is theirs.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .config import WorkflowConfig
from .rundir import RunDir

__all__ = ["Stage", "TRAIN_CHECKPOINT", "simulate", "train", "evaluate", "benchmark", "report",
           "pipeline", "REPO"]

#: The folder holding ``hpc/`` and ``benchmarks/``: the checkout's root, or the installed
#: ``autophase`` package (where they are ``autophase.hpc`` and ``autophase.benchmarks``).
REPO = Path(__file__).resolve().parents[1]
#: The checkpoint ``autophase train`` leaves in its output folder after every epoch.
TRAIN_CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Stage:
    """One step of the workflow.

    ``argv`` is the command after any MPI launcher. ``mpi`` stages are launched over
    ``nodes × ranks_per_node`` ranks; ``gpu`` stages want one GPU per rank (per worker for
    non-MPI stages). ``outputs`` are the files that exist once the stage has finished.
    ``resume_flag`` is appended to ``argv`` when ``resume_file`` already exists, so that a
    killed stage continues from its last checkpoint. ``keep_file``: a copy of ``resume_file``
    kept elsewhere — written after the command ends (stopped or not), and copied back in when
    ``resume_file`` is absent, so that a new run directory on a new machine resumes.
    ``threads`` is ``OMP_NUM_THREADS`` per rank.
    ``rank_invariant``: the outputs do not depend on the rank count (simulation: each
    crystal's seed derives from the run seed and its index), so a new count keeps them.
    """

    name: str
    argv: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    mpi: bool = False
    nodes: int = 1
    ranks_per_node: int = 1
    gpu: bool = False
    resume_file: str | None = None
    resume_flag: str = "--resume"
    keep_file: str | None = None
    threads: int | None = None
    env: tuple[tuple[str, str], ...] = field(default=())
    rank_invariant: bool = False

    @property
    def ranks(self) -> int:
        return self.nodes * self.ranks_per_node

    @property
    def command(self) -> str:
        """``argv`` as one shell-quoted string."""
        return shlex.join(self.argv)

    def params(self) -> dict:
        """What identifies the stage's outputs (for :meth:`RunDir.stamp`)."""
        return {"argv": list(self.argv)} if self.rank_invariant else {"argv": list(self.argv), "ranks": self.ranks}


def _threads(cores: int, ranks_per_node: int) -> int:
    # Ranks on one node share its cores: one thread pool each would oversubscribe them.
    return max(1, cores // max(1, ranks_per_node))


def simulate(cfg: WorkflowConfig, run: RunDir, n_crystals: int | None = None, nodes: int | None = None,
             ranks_per_node: int | None = None, out: Path | None = None, name: str = "simulate",
             shard_size: int | None = None, size: int | None = None) -> Stage:
    """``autophase simulate`` as an MPI job; the keyword arguments override the config
    (scaling studies)."""
    s = cfg.simulate
    nodes = nodes or s.nodes
    rpn = ranks_per_node or s.ranks_per_node
    out = out or run.out("simulate")
    argv = ["autophase", "simulate", "--n-crystals", str(n_crystals or s.n_crystals), "--out", str(out),
            "--relax", s.relax, "--seed", str(cfg.run.seed)]
    if s.photons:
        argv += ["--photons", s.photons]
    if size or s.size:
        argv += ["--size", str(size or s.size)]
    if shard_size or s.shard_size:
        argv += ["--shard-size", str(shard_size or s.shard_size)]
    argv += ["--no-progress", *s.extra]  # a log file, not a terminal: no progress bar
    return Stage(name, tuple(argv), outputs=(str(out / "manifest.json"),), mpi=True, nodes=nodes,
                 ranks_per_node=rpn, threads=_threads(cfg.site.cpus_per_node, rpn), rank_invariant=True)


def train(cfg: WorkflowConfig, run: RunDir, data: Path | None = None, out: Path | None = None,
          ranks_per_node: int | None = None, nodes: int | None = None, epochs: int | None = None,
          batch_size: int | None = None, steps_per_epoch: int | None = None, name: str = "train") -> Stage:
    """``autophase train`` as an MPI job of ``nodes × ranks_per_node`` ranks (GPUs on GPU sites)."""
    t = cfg.train
    out = out or run.out("train")
    rpn = ranks_per_node or t.ranks_per_node
    argv = ["autophase", "train", "--data", str(data or run.out("simulate")), "--out", str(out),
            "--engine", t.engine, "--epochs", str(epochs or t.epochs), "--batch-size", str(batch_size or t.batch_size)]
    if steps_per_epoch:
        argv += ["--steps-per-epoch", str(steps_per_epoch)]
    if t.lr is not None:
        argv += ["--lr", repr(t.lr)]
    if t.init:
        argv += ["--init", t.init]
    argv += ["--no-progress", *t.extra]
    ckpt = str(out / TRAIN_CHECKPOINT)
    return Stage(name, tuple(argv), outputs=(ckpt,), mpi=True, nodes=nodes or t.nodes, ranks_per_node=rpn,
                 gpu=cfg.site.gpus_per_node > 0, resume_file=ckpt,
                 keep_file=str(Path(t.keep).absolute()) if t.keep else None,
                 threads=_threads(cfg.site.cpus_per_node, rpn))


def evaluate(cfg: WorkflowConfig, run: RunDir) -> Stage:
    """``autophase evaluate`` of the trained model on held-out shards (one worker, one GPU)."""
    e = cfg.evaluate
    results = run.out("evaluate") / "results.json"
    argv = ["autophase", "evaluate", "--data", str(run.out("simulate")),
            "--model", str(run.out("train") / TRAIN_CHECKPOINT), "--out", str(results),
            "--refine", str(e.refine), "--phasing", str(e.phasing)]
    if e.n is not None:
        argv += ["--n", str(e.n)]
    argv += list(e.extra)
    return Stage("evaluate", tuple(argv), outputs=(str(results),), gpu=cfg.site.gpus_per_node > 0)


def benchmark(cfg: WorkflowConfig, run: RunDir, suite: str, repo: Path = REPO) -> Stage:
    """``python benchmarks/bench_<suite>.py [--quick] --out bench/<suite>.json``."""
    out = run.out("benchmarks") / f"{suite}.json"
    argv = ["python", str(repo / "benchmarks" / f"bench_{suite}.py")]
    if cfg.benchmarks.quick:
        argv.append("--quick")
    argv += [*cfg.benchmarks.extra, "--out", str(out)]
    return Stage(f"bench-{suite}", tuple(argv), outputs=(str(out),), gpu=cfg.site.gpus_per_node > 0)


def report(cfg: WorkflowConfig, run: RunDir, results: list[str]) -> Stage:
    """``autophase report RESULTS… -o report/`` over every JSON the run wrote."""
    out = run.out("report")
    argv = ["autophase", "report", *results, "-o", str(out)]
    return Stage("report", tuple(argv), outputs=(str(out),))


def result_files(cfg: WorkflowConfig, run: RunDir, scaling_files: list[str] = ()) -> list[str]:
    """The JSON files the report reads: evaluation, each benchmark, each scaling study."""
    files = [evaluate(cfg, run).outputs[0]]
    files += [benchmark(cfg, run, s).outputs[0] for s in cfg.benchmarks.suites]
    files += list(scaling_files)
    return files


def pipeline(cfg: WorkflowConfig, run: RunDir, repo: Path = REPO) -> list[Stage]:
    """The stages of the graph in order (validation of the manifest runs in-process, and
    scaling studies come from :mod:`hpc.scaling`)."""
    stages = [simulate(cfg, run), train(cfg, run), evaluate(cfg, run)]
    stages += [benchmark(cfg, run, s, repo) for s in cfg.benchmarks.suites]
    if cfg.report.enabled:
        from .scaling import study_files
        stages.append(report(cfg, run, result_files(cfg, run, study_files(cfg, run))))
    return stages
