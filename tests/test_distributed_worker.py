"""Rank program for tests/test_distributed.py (no tests here; pytest collects nothing).

Run as ``mpiexec -n 2 python tests/test_distributed_worker.py ENGINE OUT_DIR`` (or under
horovodrun). Each rank builds the real Trainer on a tiny synthetic set with BatchNorm
frozen (eval mode: per-rank batch statistics would otherwise make an N-rank step differ
from a 1-process step by design), takes ONE optimiser step on its own first batch and
saves, to OUT_DIR/rank<r>.pt: its epoch-0 training indices, its validation indices, the
batch it used, the averaged (clipped) gradients and the parameters after the step.
"""
from __future__ import annotations

import sys
from pathlib import Path

SPEC = dict(n=20, seed=3, width=4, depth=3, batch=2, lr=1e-3)


def make_trainer(engine, out_dir, channels_last: bool = True):
    from autophase.model.network import NetworkConfig
    from autophase.train.data import SyntheticCrystals
    from autophase.train.trainer import TrainConfig, Trainer

    ds = SyntheticCrystals(SPEC["n"], seed=SPEC["seed"], photons=(1e6, 1e8))
    cfg = TrainConfig(epochs=1, batch_size=SPEC["batch"], lr=SPEC["lr"], warmup_steps=0, freeze_bn=True,
                      augment=False, val_fraction=0.2, seed=5, bn_recalibrate=0, channels_last=channels_last)
    return Trainer(NetworkConfig(width=SPEC["width"], depth=SPEC["depth"]), cfg, ds, out_dir, engine,
                   progress=False)


def main(engine_name: str, out: str) -> None:
    import torch

    from autophase.distributed import init_engine

    eng = init_engine(engine_name)
    tr = make_trainer(eng, out)
    tr.sampler.set_epoch(0)
    indices = list(tr.sampler)
    x = next(iter(tr.train_loader))
    tr.train_step(x)
    net = eng.unwrap(tr.model)
    torch.save({"rank": eng.rank, "world": eng.world, "engine": eng.name, "indices": indices,
                "val": list(tr.my_val), "batch": x, "channels_last": tr.channels_last,
                "grads": [p.grad.detach().clone() for p in tr.params],
                "params": {k: v.detach().clone() for k, v in net.state_dict().items()}},
               Path(out) / f"rank{eng.rank}.pt")
    eng.barrier()
    eng.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
