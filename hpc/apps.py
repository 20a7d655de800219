"""The Parsl apps: a stage's command run on a worker, with its log, timing and exit status.

Every app is memoized (``cache=True``): Parsl hashes its arguments — the stage name, the
command, the log path and the stage's token (see :mod:`hpc.rundir`) — and a second run of the
same config returns the recorded result instead of running it again. ``inputs`` (the future of
the stage before, only there to order the graph) is left out of the hash: the upstream
identity that matters is already in the token.

The bodies run on the workers, so they get everything as arguments and import what they use
inside. The command runs under ``bash -c`` with stdout and stderr of every rank appended to
the stage's log file; a non-zero exit raises :class:`StageFailed`, which names the stage and
the log.
"""
from __future__ import annotations

from parsl import python_app

__all__ = ["StageFailed", "run_command", "run_mpi_command", "check_manifest"]


class StageFailed(RuntimeError):
    """A stage's command exited non-zero (or could not start)."""

    def __init__(self, stage: str, log: str, returncode: int, tail: str = ""):
        super().__init__(stage, log, returncode, tail)
        self.stage, self.log, self.returncode, self.tail = stage, log, returncode, tail

    def __str__(self) -> str:
        return f"stage '{self.stage}' failed (exit status {self.returncode}); log: {self.log}"


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent worker dies."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _run(stage: str, command: str, log: str, resume_file: str | None, resume_flag: str,
         keep_file: str | None = None) -> dict:
    """Run ``command`` with ``bash -c``, appending its output to ``log``; return timings:
    ``seconds`` (float, s) of the command, ``started``/``ended`` (float, s since the epoch).

    With ``keep_file``, a run without ``resume_file`` starts from a copy of it, and
    ``resume_file`` is copied back to it once the command has ended, however it ended."""
    import os
    import signal
    import subprocess
    import time

    from autophase.atomic import copy_file

    os.makedirs(os.path.dirname(log), exist_ok=True)
    seeded = bool(resume_file and keep_file) and not os.path.exists(resume_file) and os.path.exists(keep_file)
    if seeded:
        copy_file(keep_file, resume_file)
    resumed = bool(resume_file) and os.path.exists(resume_file)
    if resumed:
        command = f"{command} {resume_flag}"
    with open(log, "a") as f:
        f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {stage}{' (resuming)' if resumed else ''}\n"
                + (f"=== {resume_file}: copied from the kept {keep_file}\n" if seeded else "")
                + f"$ {command}\n")
        f.flush()
        started, t0 = time.time(), time.perf_counter()
        # The command stays in the worker's process group (a cancelled block is killed as a
        # group, ranks' launcher included) and gets SIGTERM if its worker dies: commands end
        # in ``exec launcher …``, and mpiexec / srun take their ranks down when terminated.
        proc = subprocess.Popen(["bash", "-c", command], stdout=f, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
        try:
            rc = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            raise
        finally:
            # A stopped run is what keeping is for: copy whatever checkpoint it left, to
            # disk (the copy is there to outlive the machine)
            if keep_file and resume_file and os.path.exists(resume_file):
                copy_file(resume_file, keep_file, fsync=True)
                f.write(f"=== {resume_file}: kept in {keep_file}\n")
        seconds = time.perf_counter() - t0
        f.write(f"=== exit status {rc} after {seconds:.1f} s\n")
    if rc != 0:
        with open(log, errors="replace") as f:
            tail = "".join(f.readlines()[-15:])
        raise StageFailed(stage, log, rc, tail)
    return {"stage": stage, "seconds": seconds, "resumed": resumed, "started": started,
            "ended": started + seconds}


@python_app(cache=True, executors=["htex"], ignore_for_cache=["inputs"])
def run_command(stage: str, command: str, log: str, token: str, resume_file: str | None = None,
                resume_flag: str = "--resume", keep_file: str | None = None, inputs=()) -> dict:
    """Run a one-process stage on an HTEX worker (one GPU each where the site has them)."""
    from autophase.hpc.apps import _run

    return _run(stage, command, log, resume_file, resume_flag, keep_file)


@python_app(cache=True, executors=["mpi"], ignore_for_cache=["inputs"])
def run_mpi_command(stage: str, command: str, log: str, token: str, resume_file: str | None = None,
                    resume_flag: str = "--resume", keep_file: str | None = None, inputs=(),
                    parsl_resource_specification=None) -> dict:
    """Run an MPI stage; ``command`` starts with ``$PARSL_MPI_PREFIX`` (see
    :func:`hpc.sites.mpi_app_command`), which the worker set from the resource specification."""
    from autophase.hpc.apps import _run

    return _run(stage, command, log, resume_file, resume_flag, keep_file)


@python_app(cache=True, executors=["htex"], ignore_for_cache=["inputs"])
def check_manifest(data_dir: str, n_crystals: int, token: str, inputs=()) -> dict:
    """Validate the simulated dataset (see :func:`hpc.manifest.validate`)."""
    from autophase.hpc.manifest import validate

    return validate(data_dir, n_crystals)
