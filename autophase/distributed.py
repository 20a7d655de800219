"""Engines for data-parallel training: ``none``, ``ddp`` (torch.distributed) and ``horovod``.

One small interface, so the trainer never branches on the engine::

    eng = init_engine("ddp")            # or "horovod", "none"
    model = eng.wrap_model(model)       # DDP(model) / model
    opt = eng.wrap_optimizer(opt, model)  # hvd.DistributedOptimizer(opt) / opt
    eng.broadcast_state(model, opt)     # every rank starts from rank 0's weights
    loss.backward(); eng.step(opt, params, clip=1.0)   # averaged gradients, clipped, stepped
    eng.all_reduce_sum([loss_sum, n])   # metrics over all ranks
    eng.shutdown()

**Where ranks come from.** Never from flags: :func:`launch_env` reads the launcher's
environment — horovodrun (``HOROVOD_RANK/SIZE/LOCAL_RANK``), Open MPI
(``OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK``), MPICH/PALS (``PMI_RANK``, ``PMI_SIZE``,
``PMI_LOCAL_RANK`` or Hydra's ``MPI_LOCALRANKID``), PMIx (``PMIX_RANK``), Slurm
(``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``/``SLURM_NTASKS``, ``SLURM_LOCALID``) and
torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). With none of them: one process.

**Device.** Among the GPUs this process can *see* (:func:`cuda_device`): with one visible
(ALCF's affinity script, ``srun --gpus-per-task=1``) it is ``cuda:0``; with all of a
node's GPUs visible, local rank r takes ``cuda:{r % count}``. Both engines use it.

**DDP rendezvous.** NCCL on GPUs, gloo on CPUs. Under torchrun its own
``MASTER_ADDR``/``MASTER_PORT`` are used. Under an MPI launcher rank 0 gathers the ranks'
hostnames, keeps an inherited ``MASTER_ADDR``/``MASTER_PORT`` only if it names rank 0's
node (:func:`rendezvous_choice`; a job-wide export pointing elsewhere would hang the
task), else picks a free port and its hostname (plus ``AUTOPHASE_MASTER_SUFFIX``, e.g.
``.hsn.cm.polaris.alcf.anl.gov`` for Polaris' high-speed network) and broadcasts both
with mpi4py; every rank then sets ``MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK``
and calls ``init_process_group(backend, init_method="env://")``.

**Horovod** (0.28.1, MPI and Gloo controllers) runs under ``horovodrun -np N`` or plain
``mpiexec -n N``. Its DistributedOptimizer averages gradients; :meth:`Engine.step`
synchronises them *before* clipping so every rank clips the same averaged gradient.

**BatchNorm.** Each rank normalises with its own batch statistics (as the paper's
multi-GPU Keras run did); SyncBatchNorm in torch works only on GPUs. A 2-rank step
therefore equals a 1-process step on the concatenated batch exactly only with
BatchNorm in eval mode (``--freeze-bn``), which is how the tests compare them.

Threads: on a CPU node each of L local ranks gets ``cpus // L`` torch threads (unless
``OMP_NUM_THREADS`` is set), so ranks do not oversubscribe the cores.

Launch::

    mpiexec -n 2 autophase train --engine ddp ...
    horovodrun -np 2 autophase train --engine horovod ...   (or mpiexec -n 2 ...)
    torchrun --nproc-per-node 4 -m autophase.cli train --engine ddp ...
"""
from __future__ import annotations

import datetime
import os
import socket
from contextlib import closing
from typing import Mapping, Sequence

import torch

from .mpi_world import LaunchEnv, launch_env

__all__ = ["ENGINES", "LaunchEnv", "launch_env", "cuda_device", "choose_device", "Engine", "init_engine",
           "free_port", "rendezvous_choice"]

ENGINES = ("none", "ddp", "horovod")


def cuda_device(local_rank: int, device_count: int) -> str:
    """The CUDA device of a rank with this node-local rank, among the GPUs it can *see*.

    ``device_count`` is what CUDA reports for this process, i.e. after
    ``CUDA_VISIBLE_DEVICES``. One visible GPU (Polaris' ``set_affinity_gpu_polaris.sh``,
    Perlmutter's ``--gpus-per-task=1``) is ``cuda:0`` whatever the local rank; with all of a
    node's GPUs visible, local rank r takes ``cuda:{r % device_count}``; none: ``"cpu"``.
    (``cuda:{local_rank}`` with one visible GPU is "invalid device ordinal" on ranks 1–3.)
    """
    if device_count <= 0:
        return "cpu"
    if device_count == 1:
        return "cuda:0"
    return f"cuda:{max(local_rank, 0) % device_count}"


def choose_device(environ: Mapping[str, str] | None = None, device_count: int | None = None,
                  local_rank: int | None = None) -> str:
    """:func:`cuda_device` for this process: local rank from the launcher's environment
    (``environ``, default ``os.environ``) unless given, ``device_count`` from torch unless given."""
    if local_rank is None:
        local_rank = launch_env(environ).local_rank
    if device_count is None:
        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return cuda_device(local_rank, device_count)


def free_port() -> int:
    """A TCP port that was free a moment ago on this host."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _short(host: str) -> str:
    return host.split(".")[0].lower()


def rendezvous_choice(inherited: tuple[str, str], hosts: Sequence[str], suffix: str, port: int
                      ) -> tuple[str, int, str]:
    """DDP's ``(MASTER_ADDR, MASTER_PORT, note)`` for an MPI-launched task; pure.

    ``hosts[r]`` is rank r's hostname (``hosts[0]``: rank 0, where torch's store listens),
    ``inherited`` the ``(MASTER_ADDR, MASTER_PORT)`` found in the environment, ``port`` a
    free port on rank 0's host. An inherited pair is kept only when it names rank 0's node
    (its short name, or ``localhost``/``127.0.0.1`` when every rank is on that node):
    any other address — a job-wide ``MASTER_ADDR`` pointing at a node outside this task,
    as Parsl's MPI tasks inherit on Perlmutter — would make every rank wait on a store
    nobody started. Otherwise: rank 0's hostname + ``suffix`` (e.g. Polaris'
    ``.hsn.cm.polaris.alcf.anl.gov``) and ``port``; ``note`` says what was overridden.
    """
    addr, port_s = inherited
    root = hosts[0]
    one_node = all(_short(h) == _short(root) for h in hosts)
    if addr and port_s.isdigit():
        local = addr in ("localhost", "127.0.0.1")
        if (local and one_node) or (not local and _short(addr) == _short(root)):
            return addr, int(port_s), ""
    chosen = ("127.0.0.1" if len(hosts) == 1 else root + suffix), port
    note = (f"inherited MASTER_ADDR={addr}:{port_s or '?'} is not rank 0's node ({root}); "
            f"using {chosen[0]}:{chosen[1]}") if addr else ""
    return chosen[0], chosen[1], note


def _local_rank_from_mpi() -> tuple[int, int]:
    """Local rank and size by an MPI shared-memory split (when the launcher gave none)."""
    from mpi4py import MPI

    node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank(), node.Get_size()
    finally:
        node.Free()


def _set_threads(local_world: int | None) -> None:
    if os.environ.get("OMP_NUM_THREADS") or not local_world or local_world <= 1:
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    torch.set_num_threads(max(1, cpus // local_world))


class Engine:
    """Single process (``engine="none"``); the base of the distributed engines."""

    name = "none"
    # Horovod's collectives need contiguous tensors: no channels_last_3d parameters there.
    supports_channels_last = True

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device: str | None = None):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        if device is None:
            device = choose_device(local_rank=local_rank)
        elif device == "cuda" and torch.cuda.device_count():  # this rank's GPU (DDP needs an index)
            device = cuda_device(local_rank, torch.cuda.device_count())
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def wrap_optimizer(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer:
        return optimizer

    def broadcast_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Make every rank hold rank 0's parameters, buffers and (non-empty) optimizer state."""

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], clip: float | None) -> float:
        """Average gradients over ranks, clip their global norm at ``clip``, step; → the norm."""
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        optimizer.step()
        return float(norm)

    def all_reduce_sum(self, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks, float64 on the CPU."""
        return torch.as_tensor(values, dtype=torch.float64).clone()

    def all_reduce_mean_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Average floating-point tensors over ranks, in place (e.g. BatchNorm running stats)."""

    def broadcast_object(self, obj):
        return obj

    def barrier(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return getattr(model, "module", model)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world={self.world}, local_rank={self.local_rank}, device={self.device})"


class DDPEngine(Engine):
    """torch.distributed: NCCL on GPUs, gloo on CPUs; rendezvous from rank 0 over MPI."""

    name = "ddp"

    def __init__(self, launch: LaunchEnv, device: str | None = None, timeout_s: float = 600):
        import torch.distributed as dist

        local_rank = launch.local_rank
        if local_rank < 0:
            local_rank, _ = _local_rank_from_mpi() if launch.world > 1 else (0, 1)
        super().__init__(launch.rank, launch.world, local_rank, device)
        env = os.environ
        if launch.source != "torchrun":
            # torchrun's own MASTER_ADDR/PORT name its store; anything else inherited (a
            # job-wide export, a previous task's) is checked against this task's nodes.
            addr, port, note = self._rendezvous(launch)
            if note and self.rank == 0:
                print(f"ddp: {note}", flush=True)
            env["MASTER_ADDR"], env["MASTER_PORT"] = addr, str(port)
        env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"] = str(self.rank), str(self.world), str(local_rank)
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://",
                                timeout=datetime.timedelta(seconds=timeout_s))
        self._dist = dist

    @staticmethod
    def _rendezvous(launch: LaunchEnv) -> tuple[str, int, str]:
        env = os.environ
        inherited = (env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", ""))
        suffix = env.get("AUTOPHASE_MASTER_SUFFIX", "")
        if launch.world == 1:
            return rendezvous_choice(inherited, [socket.gethostname()], suffix, free_port())
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.Get_size() != launch.world or comm.Get_rank() != launch.rank:
            raise RuntimeError(f"MPI says rank {comm.Get_rank()} of {comm.Get_size()} but the launcher "
                               f"({launch.source}) says {launch.rank} of {launch.world}: is mpi4py built "
                               "for the MPI that launched this job?")
        hosts = comm.gather(socket.gethostname(), root=0)
        choice = rendezvous_choice(inherited, hosts, suffix, free_port()) if comm.Get_rank() == 0 else None
        return comm.bcast(choice, root=0)

    def wrap_model(self, model):
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    def broadcast_state(self, model, optimizer=None):
        # DDP broadcasts parameters and buffers when it wraps the model; optimizer state
        # comes from the same checkpoint on every rank, so it is equal already.
        pass

    def step(self, optimizer, params, clip):
        # DDP all-reduced (averaged) the gradients during backward().
        return super().step(optimizer, params, clip)

    def all_reduce_sum(self, values):
        t = torch.as_tensor(values, dtype=torch.float64).clone()
        if self.device.type == "cuda":
            t = t.to(self.device)
        self._dist.all_reduce(t)
        return t.cpu()

    def all_reduce_mean_(self, tensors):
        for t in tensors:
            if t.is_floating_point():
                self._dist.all_reduce(t)
                t /= self.world

    def broadcast_object(self, obj):
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        self._dist.barrier()

    def shutdown(self):
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


class HorovodEngine(Engine):
    """Horovod: averaged gradients by its DistributedOptimizer (MPI or Gloo underneath)."""

    name = "horovod"
    supports_channels_last = False

    def __init__(self, device: str | None = None):
        try:
            import horovod.torch as hvd
        except ImportError as e:
            raise RuntimeError(f"--engine horovod needs Horovod (scripts/build_horovod.sh): {e}") from None
        hvd.init()
        self.hvd = hvd
        super().__init__(hvd.rank(), hvd.size(), hvd.local_rank(), device)

    def wrap_optimizer(self, optimizer, model):
        return self.hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                             op=self.hvd.Average)

    def broadcast_state(self, model, optimizer=None):
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        # A fresh optimizer is equal everywhere already; broadcasting it would make
        # Horovod take a zero-gradient step to create the state (Adam's step count 1).
        if optimizer is not None and len(optimizer.state_dict()["state"]) > 0:
            self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    def step(self, optimizer, params, clip):
        optimizer.synchronize()  # averaged gradients now in .grad
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip else float("inf"))
        with optimizer.skip_synchronize():
            optimizer.step()
        return float(norm)

    def all_reduce_sum(self, values):
        t = torch.as_tensor(values, dtype=torch.float64).clone()
        return self.hvd.allreduce(t, op=self.hvd.Sum, name=None).cpu()

    def all_reduce_mean_(self, tensors):
        for i, t in enumerate(tensors):
            if t.is_floating_point():
                t.copy_(self.hvd.allreduce(t, op=self.hvd.Average, name=f"mean_{i}_{t.numel()}"))

    def broadcast_object(self, obj):
        return self.hvd.broadcast_object(obj, root_rank=0)

    def barrier(self):
        self.hvd.barrier()

    def shutdown(self):
        self.hvd.shutdown()


def init_engine(name: str = "none", device: str | None = None, timeout_s: float = 600) -> Engine:
    """Start the named engine on this process (ranks from the launcher's environment)."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {name!r}")
    launch = launch_env()
    if name == "none":
        if launch.world > 1:
            raise RuntimeError(f"launched as rank {launch.rank} of {launch.world} ({launch.source}) but "
                               "--engine none trains alone: pick --engine ddp or horovod")
        return Engine(device=device)
    _set_threads(launch.local_world if launch.local_world else launch.world)
    if name == "ddp":
        return DDPEngine(launch, device=device, timeout_s=timeout_s)
    return HorovodEngine(device=device)
