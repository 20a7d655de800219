"""The graph: simulate → validate manifest → train → evaluate → benchmarks → (scaling) → report.

::

    simulate (MPI, R ranks) ──► check manifest ──► train (MPI, M nodes × G ranks, ddp|horovod)
        ──► evaluate ──► bench-<suite> … ──► scaling-<stage>-<mode>-r<N> … ──► report

Each stage is a memoized Parsl app (:mod:`autophase.hpc.apps`) fed the stage's command line
(:mod:`hpc.stages`), its log file and its token (:mod:`hpc.rundir`). Run the same config
again and every finished stage comes back from Parsl's checkpoint (``reused: <stage>``); a
stage that was killed runs again, training with ``--resume`` from its last checkpoint.

Parsl schedules: every app is submitted at once, each with the futures of the stages it
waits for as ``inputs``, so stages that do not depend on each other run side by side where
the site has the workers — evaluation and the benchmarks share the htex workers after
training (``site.max_workers`` of them; with one worker they simply queue). The MPI executor
runs one MPI task at a time, and the scaling points (timings) wait for the htex stages.

Everything of a run stays in its run directory (``runs/<name>/``): the resolved config,
``logs/<stage>.log``, every output, and Parsl's own records under ``parsl/``.

Run it with ``autophase workflow --config jobs/local.toml``; ``--dry-run`` prints the plan,
the exact launcher lines and (on a batch site) the workflow's batch script.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from autophase.errors import InputError

from . import batch, scaling, sites, stages
from .config import WorkflowConfig
from .rundir import RunDir
from .stages import REPO, Stage

__all__ = ["run", "dry_run", "run_dir_for", "preflight"]

#: CLI subcommands the graph calls, by stage.
_COMMANDS = {"simulate": "simulate", "train": "train", "evaluate": "evaluate", "report": "report"}


def run_dir_for(cfg: WorkflowConfig, run_dir: str | Path | None = None) -> RunDir:
    """``--run-dir`` if given, else ``<run.root>/<run.name>``, as an absolute path."""
    return RunDir(Path(run_dir or Path(cfg.run.root) / cfg.run.name).resolve())


def preflight(cfg: WorkflowConfig, repo: Path = REPO) -> None:
    """Fail fast, before any node is used, if a command or benchmark the graph calls is absent."""
    from autophase.cli import COMMANDS

    needed = ["simulate", "train", "evaluate"] + (["report"] if cfg.report.enabled else [])
    missing = [c for c in needed if c not in COMMANDS]
    if missing:
        raise InputError(f"{cfg.source}: the graph calls `autophase {missing[0]}`, which this "
                         f"installation does not have (known: {', '.join(COMMANDS)})")
    for suite in cfg.benchmarks.suites:
        path = repo / "benchmarks" / f"bench_{suite}.py"
        if not path.is_file():
            raise InputError(f"{cfg.source}: benchmarks.suites: no {path.relative_to(repo)}")


# ------------------------------------------------------------------------------ the plan

@dataclass(frozen=True)
class Step:
    """A stage as the driver sees it.

    ``kind`` picks the app: ``"mpi"`` (the MPI executor), ``"htex"`` (one worker) or
    ``"manifest"`` (the dataset check). ``depends`` names the stages whose outputs it reads:
    their tokens join its stamp, so it reruns when they were redone. ``after`` names stages
    it only waits for (order, not data: training waits for the dataset check, benchmarks for
    training so as not to time it). ``exclusive``: the stage owns its output folder (see
    :meth:`RunDir.stamp`). A step starts once everything in ``depends`` and ``after`` (of
    the steps being run) has finished.
    """

    stage: Stage
    kind: str
    depends: tuple[str, ...] = ()
    exclusive: bool = True
    after: tuple[str, ...] = ()

    @property
    def waits_for(self) -> tuple[str, ...]:
        return self.depends + tuple(a for a in self.after if a not in self.depends)


def steps(cfg: WorkflowConfig, run: RunDir, repo: Path = REPO) -> list[Step]:
    """The graph of ``cfg`` in the order it runs."""
    sim = stages.simulate(cfg, run)
    check = Stage("manifest", ("validate", str(run.out("simulate") / "manifest.json")))
    out = [Step(sim, "mpi"), Step(check, "manifest", ("simulate",)),
           Step(stages.train(cfg, run), "mpi", ("simulate",), after=("manifest",)),
           Step(stages.evaluate(cfg, run), "htex", ("simulate", "train"))]
    benches = [Step(stages.benchmark(cfg, run, s, repo), "htex", exclusive=False, after=("train",))
               for s in cfg.benchmarks.suites]
    out += benches
    deps = ("simulate",) if cfg.scaling and cfg.scaling.stage == "train" else ()
    timed_alone = ("train", "evaluate", *(b.stage.name for b in benches))
    out += [Step(p.stage, "mpi", deps, after=timed_alone) for p in scaling.plan(cfg, run)]
    if cfg.report.enabled:
        files = stages.result_files(cfg, run, scaling.study_files(cfg, run))
        dep_names = tuple(s.stage.name for s in out if s.kind != "manifest")
        out.append(Step(stages.report(cfg, run, files), "htex", dep_names))
    return out


def _describe(cfg: WorkflowConfig, step: Step) -> str:
    st = step.stage
    if step.kind == "mpi":
        return f"{st.nodes} node{'s' * (st.nodes > 1)} × {st.ranks_per_node} rank{'s' * (st.ranks_per_node > 1)}"
    if step.kind == "manifest":
        return "in an htex worker"
    return "1 htex worker" + (" (1 GPU)" if st.gpu else "")


def dry_run(cfg: WorkflowConfig, run_dir: str | Path | None = None, out: TextIO | None = None) -> None:
    """Print the plan: each stage's exact launcher lines and, on a batch site, the workflow's
    batch script. Submits nothing, starts nothing, writes nothing."""
    run = run_dir_for(cfg, run_dir)
    mod = sites.site_module(cfg)
    w = (out or sys.stdout).write
    w(f"# run config {cfg.source} · site {cfg.site.name}"
      f"{'' if mod.SCHEDULER is None else f' ({mod.SCHEDULER}, driver in the {cfg.site.driver})'}\n")
    w(f"# run directory {run.root}\n")
    if mod.SCHEDULER is not None and cfg.site.driver == "job":
        w(f"\n## batch script: jobs/{cfg.site.name}/workflow{batch.SUFFIX[mod.SCHEDULER]} "
          f"(submit from the repository root)\n")
        w(batch.workflow_script(cfg))
    elif mod.SCHEDULER is not None:
        w(f"\n## driver: run `autophase workflow --config {cfg.source}` on a login node; "
          f"Parsl submits its blocks with {'qsub' if mod.SCHEDULER == 'pbs' else 'sbatch'}\n")
    w("\n## stages (Parsl tasks; each starts when the stages it waits for are done)\n")
    for step in steps(cfg, run):
        st = step.stage
        w(f"\n[{st.name}] {_describe(cfg, step)}\n")
        if step.kind == "manifest":
            w(f"  check {st.argv[1]}: every crystal index once, every shard present\n")
            continue
        if step.kind == "mpi":
            w(f"  $PARSL_MPI_PREFIX = {batch.parsl_prefix(cfg, st)}\n")
            w(f"  task:  {sites.mpi_app_command(cfg, st)}\n")
            w(f"  batch: {mod.launch(cfg, st)}\n")
        else:
            w(f"  task:  {sites.app_command(st)}\n")
        if step.waits_for:
            w(f"  waits for: {', '.join(step.waits_for)}\n")
        if st.resume_file:
            w(f"  resumes with {st.resume_flag} when {st.resume_file} exists\n")
        if st.keep_file:
            w(f"  keeps its checkpoint in {st.keep_file} (and resumes from it in a new run directory)\n")
        w(f"  log:   {run.log(st.name)}\n")


# ------------------------------------------------------------------------------ running

class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that the same clean-up runs."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by killing a run
    raise _Terminated()


def run(cfg: WorkflowConfig, run_dir: str | Path | None = None, echo: Callable[[str], None] = print,
        address: str | None = None, only: Callable[[str], bool] | None = None,
        plan: list[Step] | None = None) -> dict[str, dict]:
    """Run the graph; return ``{stage: {"seconds", "reused", …}}``.

    ``only(stage name)`` picks a part of the graph (``autophase scaling`` runs the scaling
    points alone); the stages it leaves out must have left their outputs already. ``plan``
    replaces the graph of ``cfg`` by other steps (the tests run small real commands through
    the same driver).

    Raises :class:`~autophase.hpc.apps.StageFailed` (naming the stage and its log) when a stage fails,
    :class:`InputError` for a bad dataset or config, ``KeyboardInterrupt`` when interrupted
    (Ctrl-C or SIGTERM) — after Parsl has stopped its workers, so nothing is left running.
    """
    import parsl

    from . import apps

    if only is None and plan is None:
        preflight(cfg)
    run = run_dir_for(cfg, run_dir)
    parsl_config = sites.parsl_config(cfg, run, address)  # fails early off-site (no interface)
    run.lock()
    # SIGTERM (kill, a scheduler's walltime warning) ends the run like Ctrl-C does; and Ctrl-C
    # must work even when the driver was started with SIGINT ignored (`cmd &` in a script).
    old_handlers = ({signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
                     signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
                    if _main_thread() else {})
    dfk = None
    studies: dict[str, Future] = {}
    t_start = time.perf_counter()
    try:
        plan = steps(cfg, run) if plan is None else plan
        chosen = [s for s in plan if only is None or only(s.stage.name)]
        if not chosen:
            raise InputError(f"{cfg.source}: nothing to run")
        # Stamp the chosen steps and what they depend on (whose tokens their own include).
        deps = {s.stage.name: s.depends for s in plan}
        needed, todo = set(), [s.stage.name for s in chosen]
        while todo:
            name = todo.pop()
            if name not in needed:
                needed.add(name)
                todo += deps.get(name, ())
        run.prepare(cfg, "config.toml" if only is None else "config-partial.toml")
        tokens: dict[str, str] = {}
        for step in plan:
            if step.kind == "manifest" or step.stage.name not in needed:
                continue
            params = {**step.stage.params(), "after": {d: tokens[d] for d in step.depends}}
            tokens[step.stage.name] = run.stamp(step.stage.name, params, step.exclusive).token
        tokens["manifest"] = tokens.get("simulate", "")
        plan = chosen

        echo(f"workflow {cfg.run.name} on {cfg.site.name}: run directory {run.root}")
        sites.driver_path()
        dfk = parsl.load(parsl_config)
        futures = []
        by_name: dict = {}
        points = {p.stage.name: p for p in scaling.plan(cfg, run)}
        # A scaling study's JSON is written here, by the driver, once its points are done;
        # the report (which reads it) waits for these futures too.
        studies = {points[s.stage.name].mode: Future() for s in plan if s.stage.name in points}
        for step in plan:
            st = step.stage
            log = str(run.log(st.name))
            # Parsl starts the app once these futures are done: the graph's edges.
            inputs = [by_name[d] for d in step.waits_for if d in by_name]
            if st.name == "report":
                inputs += list(studies.values())
            if step.kind == "manifest":
                fut = apps.check_manifest(str(run.out("simulate")), cfg.simulate.n_crystals,
                                          tokens["manifest"], inputs=inputs)
            elif step.kind == "mpi":
                fut = apps.run_mpi_command(st.name, sites.mpi_app_command(cfg, st), log, tokens[st.name],
                                           resume_file=st.resume_file, resume_flag=st.resume_flag,
                                           keep_file=st.keep_file,
                                           inputs=inputs,
                                           parsl_resource_specification=sites.resource_spec(cfg, st))
            else:
                fut = apps.run_command(st.name, sites.app_command(st), log, tokens[st.name],
                                       resume_file=st.resume_file, resume_flag=st.resume_flag,
                                       keep_file=st.keep_file, inputs=inputs)
            futures.append((step, fut))
            by_name[st.name] = fut

        results: dict[str, dict] = {}
        scaling_times: dict[str, list[tuple[int, int, float]]] = {}
        fresh: dict[str, list[bool]] = {}
        for step, fut in futures:
            st = step.stage
            if step.kind != "manifest":
                echo(f"  {st.name}: {_describe(cfg, step)} · log {_rel(run.log(st.name))}")
            try:
                res = fut.result()
            except KeyboardInterrupt:
                _note(run.log(st.name), "interrupted: the driver stopped; the next run resumes here")
                echo(f"interrupted: {st.name} (log {_rel(run.log(st.name))})")
                raise
            except apps.StageFailed:
                raise
            except InputError:
                raise
            except Exception as e:  # a Parsl-side failure: the stage still names itself
                raise apps.StageFailed(st.name, str(run.log(st.name)), -1, f"{type(e).__name__}: {e}") from e
            reused = bool(fut.task_record.get("from_memo"))
            _check_outputs(st, reused, run)
            if step.kind == "manifest":
                res = dict(res)
                echo(f"{'reused' if reused else 'checked'}: manifest · {res['n_crystals']} crystals in "
                     f"{res['n_shards']} shards ({res['bytes'] / 1e6:.1f} MB)")
            elif reused:
                echo(f"reused: {st.name}")
            else:
                echo(f"done: {st.name} in {res['seconds']:.1f} s" + (" (resumed)" if res.get("resumed") else ""))
            results[st.name] = {**res, "reused": reused}
            if st.name in points:
                p = points[st.name]
                scaling_times.setdefault(p.mode, []).append((p.ranks, p.work, res["seconds"]))
                fresh.setdefault(p.mode, []).append(not reused)
                if len(scaling_times[p.mode]) == sum(q.mode == p.mode for q in points.values()):
                    path = Path(scaling.study_files(cfg, run)[cfg.scaling.modes.index(p.mode)])
                    if any(fresh[p.mode]) or not path.exists():  # reused points: keep the record
                        scaling.write(cfg, run, p.mode, scaling_times[p.mode], path)
                        echo(f"wrote: {_rel(path)}")
                    studies[p.mode].set_result(str(path))
        total = time.perf_counter() - t_start
        echo(f"workflow {cfg.run.name}: finished in {total:.1f} s")
        if "report" in results:
            echo(f"report: {_rel(_report_entry(run.out('report')))}")
        return results
    finally:
        for gate in studies.values():
            if not gate.done():  # the run stopped before the study was written
                gate.set_exception(RuntimeError("scaling study not written"))
        if dfk is not None:
            dfk.cleanup()
            parsl.clear()
            _keep_checkpoints(plan or [])
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        run.unlock()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _keep_checkpoints(plan: list[Step]) -> None:
    """Copy each stage's checkpoint to its ``keep_file`` where it is newer.

    The stage's app does this when its command ends; an interrupted driver takes its workers
    down (the command gets SIGTERM and checkpoints), and whether an app's own copy ran then is
    not certain, so the driver copies again once its workers are gone.
    """
    from autophase.atomic import copy_file

    for step in plan:
        src, keep = step.stage.resume_file, step.stage.keep_file
        if src and keep and os.path.exists(src):
            if not os.path.exists(keep) or os.path.getmtime(src) > os.path.getmtime(keep):
                copy_file(src, keep, fsync=True)


def _check_outputs(stage: Stage, reused: bool, run: RunDir) -> None:
    for path in stage.outputs:
        if not Path(path).exists():
            if reused:
                raise InputError(f"stage '{stage.name}': recorded as finished, but {path} is gone; "
                                 f"delete {run.out(stage.name)} and run again to redo it")
            raise InputError(f"stage '{stage.name}' exited 0 but did not write {path}; "
                             f"see {run.log(stage.name)}")


def _note(log: Path, text: str) -> None:
    try:
        with open(log, "a") as f:
            f.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass


def _report_entry(report_dir: Path) -> Path:
    for name in ("index.html", "report.html", "report.md", "index.md", "report.pdf"):
        if (report_dir / name).exists():
            return report_dir / name
    return report_dir


def _rel(path: str | Path) -> str:
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
