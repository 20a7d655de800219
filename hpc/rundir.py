"""The run directory: one folder per run holding its resolved config, logs and outputs.

Layout of ``<root>/<name>/``::

    config.toml      the resolved run config (every default filled in); config-partial.toml
                     the one of a part of the graph run alone (``autophase scaling``)
    data/            simulate: shards + manifest.json
    train/           train: checkpoints (one per epoch)
    eval/            evaluate: results.json
    bench/           benchmarks: <suite>.json
    scaling/         scaling studies: scaling-<stage>-<mode>.json
    report/          the report
    logs/            <stage>.log, one per stage (stdout and stderr of every rank)
    stages/          <stage>.json stamps: the parameters and the token of each stage's outputs
    parsl/           Parsl's run directories (NNN/) with the task checkpoints it reloads
    previous/        outputs moved aside when a stage's parameters changed
    .lock            the pid of the driver now using the directory

**Stage tokens.** Parsl memoizes a task on a hash of its arguments. Each stage receives a
*token* among its arguments, and the token changes whenever the stage's output directory is
(re)created: the first time, after its parameters changed (the old outputs are moved to
``previous/``), or after someone deleted it. So a memoized result is reused only while the
outputs it describes are still on disk, and a stage killed half-way keeps its token and
resumes (training with ``--resume``) instead of starting over.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autophase.atomic import write_text
from autophase.errors import InputError

from . import config as _config

__all__ = ["RunDir", "StageStamp"]


@dataclass(frozen=True)
class StageStamp:
    """What produced a stage's outputs: its parameters and the token they were given."""

    stage: str
    params: dict[str, Any]
    token: str


class RunDir:
    """Paths and bookkeeping of one run directory (see the module docstring)."""

    def __init__(self, root: str | Path):
        # Kept as given: relative for batch scripts that cd into the submission directory,
        # absolute (the workflow resolves it) for Parsl workers.
        self.root = Path(root)

    # -- paths
    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def out(self, stage: str) -> Path:
        """Output folder of ``stage`` (``simulate`` → ``data/``, ``evaluate`` → ``eval/``, …)."""
        if stage.startswith("scaling-"):
            return self.root / "scaling" / stage.removeprefix("scaling-")
        if stage.startswith("bench-"):
            return self.root / "bench"
        return self.root / {"simulate": "data", "evaluate": "eval", "benchmarks": "bench"}.get(stage, stage)

    def log(self, stage: str) -> Path:
        return self.root / "logs" / f"{stage}.log"

    @property
    def parsl(self) -> Path:
        return self.root / "parsl"

    def stamp_path(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    # -- set-up
    def prepare(self, cfg: _config.WorkflowConfig, name: str = "config.toml") -> None:
        """Create the folders and write the resolved config (atomically) as ``name`` (a
        part of the graph run alone, e.g. a scaling study, keeps its own beside the run's)."""
        for sub in ("logs", "stages", "parsl"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        write_text(self.root / name, _config.dumps(cfg))

    # -- stage tokens
    def stamp(self, stage: str, params: dict[str, Any], exclusive: bool = True) -> StageStamp:
        """The stamp under which ``stage`` runs now, minting a new token when needed.

        The old token is kept only if the stamp's parameters equal ``params`` and the
        stage's output folder exists; if the parameters differ, the old outputs are moved
        to ``previous/<stage>-<old token>/`` so that nothing of them mixes with the new run.
        ``params`` must be JSON-serialisable (it is compared through JSON). A stage that
        shares its folder with others (``exclusive=False``: each benchmark suite writes one
        file into ``bench/``) gets a new token but moves nothing; its rerun overwrites its file.
        """
        params = json.loads(json.dumps(params))
        out = self.out(stage)
        path = self.stamp_path(stage)
        old = None
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                old = StageStamp(raw["stage"], raw["params"], raw["token"])
            except (ValueError, KeyError, TypeError):
                old = None  # a torn stamp: treat the stage as never run
        if old is not None and old.params == params and out.exists():
            return old
        if exclusive and old is not None and old.params != params and out.exists():
            dest = self.root / "previous" / f"{stage}-{old.token}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(out), str(dest))
        new = StageStamp(stage, params, secrets.token_hex(6))
        out.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"stage": stage, "params": params, "token": new.token,
                                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2) + "\n")
        return new

    # -- one driver at a time
    def lock(self) -> None:
        """Take ``.lock`` for this process; refuse if a live driver holds it.

        Two drivers on one run directory would write the same checkpoints; a stale lock
        (its process gone, e.g. after ``kill -9``) is taken over.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / ".lock"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise InputError(f"{self.root}: in use by another workflow driver (pid {pid}); "
                                     f"wait for it or kill it") from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return
        raise InputError(f"{lock}: cannot take the run directory's lock")

    def unlock(self) -> None:
        lock = self.root / ".lock"
        try:
            if int(lock.read_text().strip() or 0) == os.getpid():
                lock.unlink()
        except (OSError, ValueError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


