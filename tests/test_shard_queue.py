"""Dynamic shard hand-out for ``autophase simulate`` (:class:`autophase.simulate.run.ShardQueue`):
under ``mpiexec -n 2`` every index goes to exactly one rank, and a rank whose work is slow
takes fewer shards (load balancing), where the old round robin gave each rank half."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autophase.simulate.run import ShardQueue

pytestmark = [pytest.mark.mpi]

CLAIMS = r'''
import json, sys, time
from mpi4py import MPI
from autophase.simulate.run import ShardQueue
comm = MPI.COMM_WORLD
q = ShardQueue(comm, 24)
mine = []
for k in q:
    mine.append(k)
    for crystal in range(4):                       # rank 0 draws the expensive crystals
        time.sleep(0.05 if comm.rank == 0 else 0.005)
        q.poke()                                   # as simulate does between crystals
q.close()
everyone = comm.gather(mine, root=0)
if comm.rank == 0:
    print(json.dumps(everyone))
'''


def test_one_rank_counts_through():
    q = ShardQueue(None, 5)
    assert list(q) == [0, 1, 2, 3, 4]
    q.close()


def test_two_ranks_share_dynamically(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside the interpreter")
    script = tmp_path / "claims.py"
    script.write_text(CLAIMS)
    r = subprocess.run([str(mpiexec), "-n", "2", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    slow, fast = json.loads(r.stdout.strip().splitlines()[-1])
    assert sorted(slow + fast) == list(range(24))          # each index exactly once
    assert len(fast) >= 2 * len(slow), (slow, fast)         # the fast rank took the surplus
