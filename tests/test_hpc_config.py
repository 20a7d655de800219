"""Run configs (hpc.config): strict loading, cross-field checks, the resolved-config round trip,
and the Parsl Config each site builds from them (no scheduler is contacted)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from autophase.errors import InputError  # noqa: E402
from autophase.hpc import config, sites  # noqa: E402
from autophase.hpc.rundir import RunDir  # noqa: E402

JOBS = REPO / "jobs"
MINIMAL = """
[run]
name = "t"
[site]
name = "local"
[simulate]
n_crystals = 8
[train]
epochs = 1
batch_size = 2
"""


def _err(text: str) -> str:
    with pytest.raises(InputError) as e:
        config.loads(text, "jobs/x.toml")
    return str(e.value)


@pytest.mark.parametrize("site", ["local", "polaris", "perlmutter", "slurm-local"])
def test_shipped_configs_load_and_round_trip(site):
    cfg = config.load(JOBS / f"{site}.toml")
    assert cfg.site.name == {"slurm-local": "slurm"}.get(site, site)
    again = config.loads(config.dumps(cfg), "resolved")
    assert again == cfg
    assert again.site.env == cfg.site.env


def test_minimal_config_fills_defaults():
    cfg = config.loads(MINIMAL, "m.toml")
    assert cfg.train.engine == "ddp" and cfg.train.ranks == 1
    assert cfg.evaluate.refine == 50 and cfg.evaluate.phasing == 600
    assert cfg.scaling is None and cfg.report.enabled


def test_unknown_key_names_key_and_file():
    msg = _err(MINIMAL.replace("epochs = 1", "epochs = 1\nepoch = 3"))
    assert "jobs/x.toml" in msg and "[train]" in msg and "'epoch'" in msg


def test_unknown_table_and_nested_key():
    assert "[tarin]" in _err(MINIMAL + "\n[tarin]\nx = 1\n")
    msg = _err(MINIMAL.replace('name = "local"', 'name = "local"\nnodez = 2'))
    assert "'nodez'" in msg and "[site]" in msg


def test_missing_table_and_key():
    assert "missing table [train]" in _err(MINIMAL.split("[train]")[0])
    assert "'batch_size'" in _err(MINIMAL.replace("batch_size = 2", ""))


@pytest.mark.parametrize("old,new,needle", [
    ("epochs = 1", 'epochs = "1"', "train.epochs: expected int"),
    ("epochs = 1", "epochs = true", "train.epochs: expected int"),
    ('name = "local"', 'name = "summit"', "site.name"),
    ("n_crystals = 8", "n_crystals = 8.0", "simulate.n_crystals"),
    ("batch_size = 2", "batch_size = 2\nengine = \"mpi\"", "train.engine"),
])
def test_wrong_types_are_named(old, new, needle):
    assert needle in _err(MINIMAL.replace(old, new, 1))


@pytest.mark.parametrize("extra,needle", [
    ("[simulate]\nranks = 3\nnodes = 2\n", "divide evenly"),
    ("[train]\nengine = \"none\"\nranks_per_node = 2\n", "'none' trains on one rank"),
    ("[site]\nwalltime = \"1h\"\n", "HH:MM:SS"),
    ("[site]\nnodes = 2\n", "exactly one node"),
    ("[simulate]\nphotons = \"lots\"\n", "LO:HI"),
    ("[scaling]\nranks = [1, 2]\n", "needs 2"),
])
def test_cross_field_checks(extra, needle):
    table, body = extra.split("\n", 1)
    text = MINIMAL.replace(table + "\n", table + "\n" + body, 1) if table in MINIMAL else MINIMAL + extra
    assert needle in _err(text)


def test_hpc_sites_require_account_queue_interface():
    text = (JOBS / "polaris.toml").read_text()
    assert "site.account" in _err(text.replace('account = "YOUR_PROJECT"', 'account = ""'))
    assert "site.interface" in _err(text.replace('interface = "bond0"', 'interface = ""'))
    pm = (JOBS / "perlmutter.toml").read_text()
    assert "site.constraint" in _err(pm.replace('constraint = "gpu"', 'constraint = ""'))
    assert "GPUs per node" in _err(pm.replace("ranks_per_node = 4\nepochs = 50", "ranks_per_node = 8\nepochs = 50"))


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such run config"):
        config.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    with pytest.raises(InputError, match="not valid TOML"):
        config.load(bad)


# ------------------------------------------------------------------ Parsl configs per site

def test_local_builds_a_real_parsl_config(tmp_path):
    from parsl.config import Config
    from parsl.dataflow.memoization import BasicMemoizer
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import SimpleLauncher
    from parsl.providers import LocalProvider

    cfg = config.load(JOBS / "local.toml")
    run = RunDir(tmp_path / "run")
    pc = sites.parsl_config(cfg, run)
    assert isinstance(pc, Config)
    htex, mpi = pc.executors
    assert isinstance(htex, HighThroughputExecutor) and not isinstance(htex, MPIExecutor)
    assert (htex.label, mpi.label) == ("htex", "mpi")
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "mpiexec"
    assert htex.address == "127.0.0.1"
    assert isinstance(mpi.provider, LocalProvider) and isinstance(mpi.provider.launcher, SimpleLauncher)
    # the generated node file the MPI block's scheduler detection reads
    nodefile = run.parsl / "nodefile"
    assert nodefile.read_text() == "localhost\n"
    assert f"export PBS_NODEFILE={nodefile}" in mpi.provider.worker_init
    assert "export TMPDIR=/tmp" in htex.provider.worker_init
    assert isinstance(pc.memoizer, BasicMemoizer) and pc.memoizer.checkpoint_mode == "task_exit"
    assert pc.run_dir == str(run.parsl)


@pytest.mark.parametrize("driver", ["job", "login"])
def test_polaris_parsl_config(tmp_path, driver):
    from parsl.executors import MPIExecutor
    from parsl.launchers import MpiExecLauncher, SimpleLauncher
    from parsl.providers import LocalProvider, PBSProProvider

    text = (JOBS / "polaris.toml").read_text().replace('driver = "job"', f'driver = "{driver}"')
    cfg = config.loads(text, "polaris.toml")
    pc = sites.parsl_config(cfg, RunDir(tmp_path), address="10.0.0.1")
    htex, mpi = pc.executors
    assert htex.available_accelerators == ["0", "1", "2", "3"]
    assert htex.cpu_affinity == "list:24-31,56-63:16-23,48-55:8-15,40-47:0-7,32-39"
    assert htex.prefetch_capacity == 0 and htex.address == "10.0.0.1"
    assert isinstance(htex.provider.launcher, MpiExecLauncher)
    assert htex.provider.launcher.bind_cmd == "--cpu-bind"
    assert "--depth=64 --ppn 1" in htex.provider.launcher.overrides
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "mpiexec"
    assert isinstance(mpi.provider.launcher, SimpleLauncher)
    init = htex.provider.worker_init
    assert "module load conda" in init and "conda activate base" in init and "export TMPDIR=/tmp" in init
    assert "export NCCL_NET_GDR_LEVEL=PHB" in init and "export NCCL_NET='AWS Libfabric'" in init
    if driver == "login":
        assert isinstance(htex.provider, PBSProProvider) and isinstance(mpi.provider, PBSProProvider)
        p = mpi.provider
        assert (p.account, p.queue, p.walltime) == ("YOUR_PROJECT", "debug-scaling", "01:00:00")
        assert p.nodes_per_block == 8 and p.select_options.lstrip(":") == "ngpus=4"
        assert "#PBS -l filesystems=home:eagle" in p.scheduler_options
    else:
        assert isinstance(htex.provider, LocalProvider) and mpi.provider.nodes_per_block == 8


@pytest.mark.parametrize("driver", ["job", "login"])
def test_perlmutter_parsl_config(tmp_path, driver):
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher, SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    text = (JOBS / "perlmutter.toml").read_text().replace('driver = "job"', f'driver = "{driver}"')
    cfg = config.loads(text, "perlmutter.toml")
    pc = sites.parsl_config(cfg, RunDir(tmp_path), address="10.0.0.2")
    htex, mpi = pc.executors
    assert htex.available_accelerators == ["0", "1", "2", "3"]
    assert isinstance(htex.provider.launcher, SrunLauncher)
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "srun"
    assert isinstance(mpi.provider.launcher, SimpleLauncher)
    if driver == "login":
        p = mpi.provider
        assert isinstance(p, SlurmProvider)
        assert (p.account, p.qos, p.constraint) == ("YOUR_PROJECT_g", "regular", "gpu")
        assert "#SBATCH --gpus-per-node=4" in p.scheduler_options
        assert "#SBATCH --constraint=gpu" in p.scheduler_options
        assert "#SBATCH -L scratch,cfs" in p.scheduler_options
    else:
        assert isinstance(mpi.provider, LocalProvider)
        assert "--overlap" in htex.provider.launcher.overrides


def test_hpc_site_without_interface_on_this_host(tmp_path):
    text = (JOBS / "polaris.toml").read_text().replace('"bond0"', '"no-such-if0"')
    cfg = config.loads(text, "polaris.toml")
    with pytest.raises(InputError, match="no-such-if0"):
        sites.parsl_config(cfg, RunDir(tmp_path))


def test_slurm_site_is_perlmutters_code_path_without_its_specifics(tmp_path):
    """jobs/slurm-local.toml: SlurmProvider blocks (no --exclusive on the one shared node, its CPUs
    asked for instead), srun MPI stages, no -A/-q/-C/--gpus-per-node anywhere, PMI-2 for srun."""
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    from autophase.hpc import batch, stages
    from autophase.hpc.sites import perlmutter, slurm

    cfg = config.load(JOBS / "slurm-local.toml")
    assert sites.site_module(cfg) is slurm and slurm.launch is perlmutter.launch
    assert cfg.site.env["SLURM_MPI_TYPE"] == "pmi2"
    pc = sites.parsl_config(cfg, RunDir(tmp_path), address="127.0.0.1")
    htex, mpi = pc.executors
    assert isinstance(htex.provider, SlurmProvider) and isinstance(mpi.provider, SlurmProvider)
    assert isinstance(htex.provider.launcher, SrunLauncher) and isinstance(mpi.provider.launcher, SimpleLauncher)
    assert isinstance(mpi, MPIExecutor) and mpi.mpi_launcher == "srun"
    assert htex.max_workers_per_node == 2 and htex.available_accelerators == []
    for p in (htex.provider, mpi.provider):
        assert not p.exclusive and p.cores_per_node == 2
        assert (p.account, p.qos, p.constraint, p.gpus_per_node) == (None, None, None, None)
        assert "--exclusive" not in p.scheduler_options and "SLURM_MPI_TYPE=pmi2" in p.worker_init
    assert "gpus" not in htex.provider.launcher.overrides
    train = stages.train(cfg, RunDir(tmp_path))
    assert "--gpus" not in sites.resource_spec(cfg, train).get("launcher_options", "")
    script = batch.stage_script(cfg, train)
    assert "#SBATCH --ntasks-per-node=2" in script and "#SBATCH -c 1" in script
    assert not any(line.startswith(("#SBATCH -A", "#SBATCH -q", "#SBATCH -C", "#SBATCH --gpus"))
                   for line in script.splitlines())
    assert "export SLURM_MPI_TYPE=pmi2" in script and "srun -N 1 --ntasks-per-node=2" in script


def test_slurm_site_needs_no_account_but_an_interface():
    text = (JOBS / "slurm-local.toml").read_text()
    assert config.loads(text, "s.toml").site.account == ""
    assert "site.interface" in _err(text.replace('interface = "lo"', 'interface = ""'))
