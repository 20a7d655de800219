"""``autophase models OUT [--rollback [VERSION]]``: the models of a ``watch --learn`` run; roll back.

Lists ``OUT/models/`` — every version the service has used, the current one marked, and
what the learner's rounds decided (:mod:`autophase.live.learn`). ``--rollback`` makes the
model that was current before the present one current again; ``--rollback VERSION`` (or
a unique prefix of it) any stored version. A running service picks the change up before
its next batch; the learner goes on from the rolled-back model.
"""
from __future__ import annotations

import argparse

NAME = "models"
HELP = "list the model versions of a `watch --learn` output folder, or roll back to an earlier one"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="the output folder of `autophase watch --learn`")
    p.add_argument("--rollback", nargs="?", const="", default=None, metavar="VERSION",
                   help="make VERSION current (default: the model current before the present one)")


def run(args) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..live.learn import ModelStore

    out = Path(args.out)
    if not out.is_dir():
        raise InputError(f"{out}: no such output folder")
    store = ModelStore(out)
    if not store.current_file.is_file():
        raise InputError(f"{out}: no models/current.json (not the output of `autophase watch --learn`)")
    if args.rollback is not None:
        old, new = store.rollback(args.rollback or None)
        print(f"models: current model {old} -> {new} ({store.path(new)})")
        return 0
    cur = store.current()[0]
    hist = store.history()
    became = {}
    for r in hist:
        v = {"start": r.get("version"), "promote": r.get("version"), "rollback": r.get("to")}.get(r.get("event"))
        if v:
            became[v] = f"{r.get('event')} {r.get('time', '')}"
    scores = {r.get("version"): r.get("score") for r in hist if r.get("event") == "promote"}
    print(f"{'':2}{'version':16}  {'became current':40}  score (geometric-mean χ², NN + ER on held-back scans)")
    for p in sorted(store.dir.glob("*.pt"), key=lambda q: q.stat().st_mtime):
        v = p.stem
        s = scores.get(v)
        print(f"{'*' if v == cur else ' ':2}{v:16}  {became.get(v, '-'):40}  {'' if s is None else f'{s:.5g}'}")
    rounds = [r for r in hist if r.get("event") == "round"]
    if rounds:
        n = {d: sum(r.get("decision") == d for r in rounds) for d in ("promoted", "refused", "stale")}
        print(f"rounds: {len(rounds)} ({n['promoted']} promoted, {n['refused']} refused, {n['stale']} stale)")
    return 0
