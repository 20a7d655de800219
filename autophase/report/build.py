"""Build the report: records in, ``index.html`` + ``report.md`` + ``report.json`` out.

    build_report(["benchmarks/results"], "reports/2026-11-25")

writes into the output folder

* ``index.html`` — one self-contained page (CSS inline, figures as base64 PNG data URIs,
  no network access of any kind);
* ``report.md`` and ``figures/*.png`` — the Markdown twin and the figures it links;
* ``report.json`` — ``{"kind": "autophase-report", "records": [Result.to_dict(), …]}``
  plus the previous run compared with, the regressions and improvements found and the
  files not loaded: tomorrow's report compares against it
  (:func:`~autophase.report.records.load_records` reads it back).

The previous run is ``previous`` when given (folders, bundles or records), else the
newest folder beside the output whose name is an earlier date (``YYYY-MM-DD``), as the
nightly job lays them out. Each file is written to a temporary name and renamed, and
``index.html`` last, so a reader never sees a half-written report.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .. import __version__
from ..atomic import write_bytes, write_text
from ..errors import InputError
from .compare import THRESHOLD
from .context import Context
from .document import Cell, Document, Para, Section, Table, figures_of, render_html, render_markdown
from .records import BUNDLE_KIND, Record, load_records, newest_per_key
from .sections import changes_blocks, suite_section, summary_cards

__all__ = ["build_report", "find_previous", "ReportFiles", "DATE_DIR"]

DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}")

# Order of the suite sections: the lead's question (phasing vs peers) first.
_ORDER = ("phasing", "refin", "infer", "predict", "simul", "train", "eval", "scal")


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    bundle: Path
    figures: tuple[Path, ...]
    regressions: int
    improvements: int
    previous: str | None


def find_previous(out_dir: str | os.PathLike) -> Path | None:
    """The newest sibling folder of ``out_dir`` named by an earlier date that holds JSON.

    Only dated output folders have a "yesterday"; for any other name there is none
    (pass ``previous`` explicitly then).
    """
    out = Path(out_dir).resolve()
    m = DATE_DIR.match(out.name)
    if not m or not out.parent.is_dir():
        return None
    cands = []
    for d in out.parent.iterdir():
        if d.is_dir() and not d.is_symlink() and DATE_DIR.match(d.name) and d.name < out.name:
            if (d / "report.json").is_file() or any(d.glob("*.json")) or any(d.glob("results/*.json")):
                cands.append(d)
    return max(cands, key=lambda d: d.name) if cands else None


def _run_label(recs: Sequence[Record]) -> str | None:
    if not recs:
        return None
    newest = max(recs, key=lambda r: r.created)
    env = newest.result.env
    return f"the run of {newest.created:%Y-%m-%d %H:%M} UTC (git {(env.git_sha or '?')[:10]}, {env.host})"


def _header(ctx: Context, now: _dt.datetime, prev_label: str | None) -> list[tuple[str, str]]:
    env = ctx.env_summary()
    envs = [r.result.env for r in ctx.records]
    shas = sorted({e.git_sha[:10] for e in envs if e.git_sha})
    created = sorted(r.created for r in ctx.records)
    gpus = sorted({r.gpu_name for r in ctx.records if r.gpu_name})
    versions = env.versions if env else {}
    vtext = ", ".join(f"{k} {versions[k]}" for k in ("autophase", "torch", "numpy", "cohere-core", "lammps")
                      if versions.get(k))
    head = [
        ("Date", f"{now:%Y-%m-%d %H:%M} UTC" + (f" · runs from {created[0]:%Y-%m-%d %H:%M} to "
                                                 f"{created[-1]:%Y-%m-%d %H:%M}" if created else "")),
        ("Git SHA", ", ".join(shas) or "unknown"),
        ("Host", ", ".join(sorted({e.host for e in envs})) or "unknown"),
        ("CPU", f"{env.cpu_model} ({env.cpu_cores} cores)" if env else "?"),
        ("GPU", ", ".join(gpus) if gpus else "none — no GPU result exists yet"),
    ]
    if env:
        head.append(("Software", f"Python {env.python}" + (f", {vtext}" if vtext else "")))
    head.append(("Compared with", prev_label or "nothing (no previous report)"))
    return head


def _records_table(ctx: Context, superseded: Iterable[Record], warnings: Sequence[str]) -> list:
    rows = []
    for r in sorted(ctx.records, key=lambda r: r.key):
        e = r.result.env
        rows.append([r.suite, r.result.kind, r.device.upper(), f"{r.created:%Y-%m-%d %H:%M}", e.host,
                     (e.git_sha or "—")[:10], r.gpu_name or "—",
                     " / ".join(f"{x:.2f}" for x in e.load_average) if e.load_average else "—", r.source])
    blocks: list = [Table(["Suite", "Kind", "Device", "Created (UTC)", "Host", "Git", "GPU", "Load (1/5/15 min)",
                           "Source"], rows, "Load average at the start of each run: timings on a loaded "
                                           "machine are slower.")]
    sup = list(superseded)
    if sup:
        blocks.append(Para("Superseded by a newer record of the same suite and device: "
                           + ", ".join(f"{r.source} ({r.created:%Y-%m-%d})" for r in sup) + ".", "note"))
    if warnings:
        blocks.append(Table(["Not loaded", "Why"], [[Cell(w.split(": ", 1)[0], "regress"),
                                                     w.split(": ", 1)[-1]] for w in warnings],
                            "Files that are not valid result records (autophase results validate FILE names "
                            "the field; old-format files: autophase results migrate FILE)."))
    return blocks


def bench_status(results: Sequence[str | os.PathLike]) -> dict[str, dict]:
    """How each suite's run went, from ``logs/bench-status.json`` beside the RESULTS
    (written by ``autophase bench``): ``{suite: {"status", "seconds", "log", …}}``."""
    seen, out = set(), {}
    for p in map(Path, results):
        base = p if p.is_dir() else p.parent
        for d in (base, base / "results"):
            f = d / "logs" / "bench-status.json"
            if f.is_file() and f.resolve() not in seen:
                seen.add(f.resolve())
                try:
                    suites = json.loads(f.read_text()).get("suites", {})
                except (OSError, ValueError, AttributeError):
                    continue
                for name, st in suites.items() if isinstance(suites, dict) else ():
                    if isinstance(st, dict):
                        out[name] = dict(st, where=str(d))
    return out


def _status_blocks(status: dict[str, dict]) -> tuple[list, list]:
    """(warning for the top of the page, table for the Records section)."""
    if not status:
        return [], []
    bad = {k: v for k, v in status.items() if v.get("status") != "ok"}
    top = []
    if bad:
        parts = []
        for k, v in sorted(bad.items()):
            why = {"timeout": f"stopped after {v.get('timeout_s') or v.get('seconds')} s",
                   "failed": f"exit {v.get('returncode')}", "no-json": "wrote no record"}.get(v.get("status"), "?")
            parts.append(f"{k} ({why}; log {v.get('log')})")
        top.append(Para(f"{len(bad)} suite{'s' * (len(bad) != 1)} did not finish: " + "; ".join(parts)
                        + ". Their figures are missing from this report.", "warn"))
    rows = [[k, Cell(v.get("status", "?"), "improve" if v.get("status") == "ok" else "regress"),
             Cell(f"{v.get('seconds', 0):.0f} s", "num"), ", ".join(v.get("records") or []) or "—",
             v.get("log") or "—"] for k, v in sorted(status.items())]
    return top, [Table(["Suite run", "Status", "Wall time", "Records", "Log"], rows,
                       "From logs/bench-status.json written by `autophase bench`.")]


def _suite_order(suite: str) -> tuple[int, str]:
    low = suite.lower()
    return (next((i for i, f in enumerate(_ORDER) if f in low), len(_ORDER)), low)


def build_report(results: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                 previous: Sequence[str | os.PathLike] | None = None, *,
                 threshold: float = THRESHOLD, title: str | None = None,
                 now: _dt.datetime | None = None) -> ReportFiles:
    """Render the report of ``results`` (files/folders of records) into ``out_dir``.

    Files that are not valid records are named on stderr and in the Records section; an
    InputError (nothing written) only when no record at all loads."""
    if not results:
        raise InputError("report: no RESULTS given (JSON files or folders of them)")
    if not (0 < threshold < 10):
        raise InputError(f"--threshold {threshold}: expected a fraction such as 0.10")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    out = Path(out_dir)
    loaded = load_records(results)
    for w in loaded.warnings:
        print(f"autophase report: warning: {w}", file=sys.stderr)
    current, superseded = newest_per_key(loaded.records)
    if not current:
        raise InputError(f"{', '.join(map(str, results))}: no valid result record "
                         f"({len(loaded.warnings)} file(s) refused; first: {loaded.warnings[0] if loaded.warnings else '-'})")
    prev_src = list(previous) if previous else [d for d in [find_previous(out)] if d is not None]
    prev_loaded = load_records(prev_src, prefer_bundle=True) if prev_src else None
    if prev_loaded and prev_loaded.warnings:
        print(f"autophase report: warning: previous run: {len(prev_loaded.warnings)} file(s) not comparable, "
              f"first: {prev_loaded.warnings[0]}", file=sys.stderr)
    prev_recs = newest_per_key(prev_loaded.records)[0] if prev_loaded else []
    ctx = Context(current, prev_recs, threshold=threshold)
    prev_label = _run_label(prev_recs)

    by_suite: dict[str, list[Record]] = {}
    for r in current:
        by_suite.setdefault(r.suite, []).append(r)
    suite_sections = [suite_section(s, sorted(by_suite[s], key=lambda r: r.device), ctx)
                      for s in sorted(by_suite, key=_suite_order)]
    # The summary reads the findings the suite sections left in ctx: build it last, show it first.
    glance = Section("At a glance", "glance", [summary_cards(ctx, prev_label)])
    if not ctx.gpu_records():
        glance.blocks.append(Para("No GPU result exists yet: every figure on this page was measured on a CPU.",
                                  "warn"))
    if loaded.warnings:
        glance.blocks.append(Para(f"{len(loaded.warnings)} file(s) could not be read as result records; "
                                  f"see Records.", "warn"))
    status_top, status_table = _status_blocks(bench_status(results))
    glance.blocks += status_top
    sections = [glance] + suite_sections + [
        Section("Changes since the previous run", "changes", changes_blocks(ctx, prev_label)),
        Section("Records", "records", _records_table(ctx, superseded, loaded.warnings) + status_table),
    ]
    day = max(r.created for r in current)
    doc = Document(title or f"autophase benchmarks — {day:%Y-%m-%d}", _header(ctx, now, prev_label), sections)
    footer = (f"Generated by autophase {__version__} report at {now:%Y-%m-%d %H:%M:%S} UTC from "
              f"{len(current)} records; regressions: worse than the previous run by more than {threshold:.0%} "
              f"in the direction each metric declares.")

    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    fig_paths = []
    for f in figures_of(doc):
        p = fig_dir / f"{f.name}.png"
        write_bytes(p, f.png)
        fig_paths.append(p)
    keep = {p.name for p in fig_paths}
    for stale in fig_dir.glob("*.png"):  # figures of an earlier report written here
        if stale.name not in keep:
            stale.unlink()
    changes = ctx.all_changes()

    def rows(status: str) -> list[dict]:
        return [{"suite": c.suite, "device": c.device, "metric": c.key[0], "params": dict(c.key[1]),
                 "previous": c.prev, "now": c.now, "rel": c.rel} for c in changes if c.status == status]

    regs, imps = rows("regression"), rows("improvement")
    bundle = {"kind": BUNDLE_KIND, "created": now.isoformat(timespec="seconds"), "threshold": threshold,
              "previous": prev_label, "regressions": regs, "improvements": imps,
              "not_loaded": list(loaded.warnings), "records": [r.result.to_dict() for r in current]}
    write_text(out / "report.json", json.dumps(bundle, indent=1) + "\n")
    write_text(out / "report.md", render_markdown(doc, "figures", footer))
    write_text(out / "index.html", render_html(doc, footer))
    return ReportFiles(out / "index.html", out / "report.md", out / "report.json", tuple(fig_paths),
                       len(regs), len(imps), prev_label)
