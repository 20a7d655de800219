"""Per-pattern latency, CPU vs GPU, over batch sizes (inference; batched phasing).

For every group of batch points (see :func:`.find.batch_points`) in every record of
the suite, a row per (device, series, batch): seconds per pattern = median time of the
batch / batch (unless the suite gave a per-pattern figure), patterns per second, the
change against the previous run, and on GPU rows the GPU's speed-up over the CPU row of
the same series and batch (same machine when it has one). With no GPU record and no GPU
row the section says so plainly instead of leaving a silent gap.
"""
from __future__ import annotations

import re

from .. import figures
from ..compare import is_number
from ..context import Context
from ..document import Cell, Figure, Para, Table
from ..records import Record
from .find import batch_points, find_number, per_pattern_latency, throughput_of, walk
from .fmt import change_cell, fmt_num, fmt_time

__all__ = ["latency_blocks", "gflops_blocks", "NO_GPU"]

NO_GPU = "No GPU result exists yet"


def _strip_device(label: str) -> str:
    """The series name without device words, so CPU and GPU rows of one series pair up."""
    words = [w for w in re.split(r"[\s/]+", label) if not re.match(r"^(device=)?(cpu|cuda|gpu)(:\d+)?$", w.lower())]
    return " ".join(words) or "all"


def latency_blocks(suite: str, recs: list[Record], ctx: Context, what: str = "pattern") -> list:
    # (series, batch, device, record key) -> (record, node path, s per item, items per s)
    rows_by_key: dict[tuple, tuple] = {}
    for rec in recs:
        # A suite may say where it ran ({"device": "cuda:0"}): a GPU host can time its CPU.
        said = rec.results.get("device") if isinstance(rec.results.get("device"), str) else ""
        said_dev = "gpu" if said.lower().startswith(("cuda", "gpu")) else "cpu" if said.lower().startswith("cpu") else None
        for grp in batch_points(rec.results):
            dev = grp.device or said_dev or rec.device
            name = _strip_device(grp.label)
            name = suite if name == "all" else name
            for b, (node, node_path) in grp.points.items():
                rows_by_key[(name, b, dev, rec.key)] = (rec, node_path, per_pattern_latency(b, node),
                                                        throughput_of(b, node))
    if not rows_by_key:
        return []
    blocks: list = []
    has_gpu = any(k[2] == "gpu" for k in rows_by_key)
    rows = []
    series: dict[str, tuple[list[float], list[float]]] = {}
    for key in sorted(rows_by_key, key=lambda k: (k[2], k[0], k[3], k[1])):
        name, b, dev, rkey = key
        rec, node_path, lat, thr = rows_by_key[key]
        speed = Cell("—", "muted")
        if dev == "gpu":
            # The same series on the CPU (same machine first), else the fastest CPU row
            # at this batch: "how much faster than the best we have on a CPU".
            same = [v for k, v in rows_by_key.items() if k == (name, b, "cpu", rkey)]
            series_cpu = [v for k, v in rows_by_key.items() if k[:3] == (name, b, "cpu")]
            any_cpu = sorted((v for k, v in rows_by_key.items() if k[1:3] == (b, "cpu") and v[2]),
                             key=lambda v: v[2])
            cpu = (same or series_cpu or any_cpu or [None])[0]
            if cpu and cpu[2] and lat:
                speed = Cell(f"×{cpu[2] / lat:.3g}", "num", f"vs CPU row {cpu[1]} ({fmt_time(cpu[2])})")
                ctx.find("gpu", suite, f"{name}, batch {b}", cpu[2] / lat,
                         f"{fmt_time(lat)} vs {fmt_time(cpu[2])} per {what}")
        dev_label = dev.upper() + (f" ({rec.gpu_name})" if dev == "gpu" and rec.gpu_name else "")
        if dev == "cpu" and rec.device == "gpu":
            dev_label += " (GPU host)"
        rows.append([dev_label, name, str(b), Cell(fmt_time(lat), "num"),
                     Cell(fmt_num(thr), "num"), change_cell(ctx.node_change(rec, node_path)), speed])
        if lat:
            host = " (GPU host)" if dev == "cpu" and rec.device == "gpu" else ""
            s = series.setdefault(f"{name}, {dev.upper()}{host}", ([], []))
            s[0].append(b)
            s[1].append(lat)
    if not has_gpu:
        blocks.append(Para(f"{NO_GPU} for {suite}: the rows below are CPU only. Run "
                           f"`autophase bench {suite}` on a GPU machine and commit "
                           f"benchmarks/results/{suite}-gpu.json to add GPU rows.", "warn"))
    blocks.append(Table(["Device", "Series", "Batch", f"Latency per {what}", f"{what.capitalize()}s per s",
                         "Δ vs previous", "GPU speed-up"], rows,
                        f"Latency per {what} = median time of one batch / batch size (after warm-up)."))
    if series:
        png = figures.latency_vs_batch(series, f"{suite}: latency per {what}, CPU vs GPU",
                                       ylabel=f"latency per {what}")
        blocks.append(Figure(ctx.fig_name(f"{suite}-latency"), png,
                             f"{suite}: seconds per {what} against batch size (lower is better); "
                             f"solid = CPU, dashed = GPU, one colour per series."))
    return blocks


def gflops_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    """Achieved GFLOP/s against the machine's own sgemm (how well the convolutions use it).

    Rows: every node with a ``…gflops`` figure that is not the sgemm reference itself; the
    reference is the ``gflops`` of a node whose path mentions ``sgemm``. The fraction is
    the suite's ``fraction_of_sgemm`` when given, else GFLOP/s ÷ sgemm GFLOP/s.
    """
    rows = []
    for rec in recs:
        ref = None
        for path, node in walk(rec.results):
            if isinstance(node, dict) and any("sgemm" in p.lower() for p in path):
                ref = find_number(node, "gflops", "gflop_s")
                if ref:
                    break
        if ref is None and isinstance(rec.results, dict):
            ref = find_number(rec.results, "sgemm_gflops")
        for path, node in walk(rec.results):
            if not isinstance(node, dict) or any("sgemm" in p.lower() for p in path):
                continue
            for k, v in node.items():
                if not (isinstance(k, str) and "gflop" in k.lower() and "sgemm" not in k.lower()
                        and is_number(v)) or k.lower() in ("forward_gflop", "gflop"):
                    continue
                frac = find_number(node, "fraction_of_sgemm")
                frac = frac if frac is not None else (float(v) / ref if ref else None)
                leaf = "/".join(path + (k,))
                rows.append([rec.device.upper(), _series_name(path), Cell(fmt_num(float(v)), "num"),
                             Cell(fmt_num(ref), "num"),
                             Cell("—" if frac is None else f"{frac:.0%}", "num"),
                             change_cell(ctx.change(rec, leaf))])
    if not rows:
        return []
    return [Table(["Device", "Where", "GFLOP/s", "sgemm GFLOP/s", "Fraction of sgemm", "Δ vs previous"], rows,
                  "Achieved GFLOP/s of the network's convolutions against a float32 matrix product on the "
                  "same device (higher is better).")]


def _series_name(path: tuple[str, ...]) -> str:
    words = [p for p in path if p.lower() not in ("models", "batches", "results")]
    return " · ".join(f"batch {w}" if w.isdigit() else w for w in words) or "—"
