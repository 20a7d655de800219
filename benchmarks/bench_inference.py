"""Inference speed of AutoPhaseNN on this machine's CPU (or GPU when present).

For the default model (width 8, depth 4) and the paper-size model (width 32, depth 4),
at batch 1 and 8, in the contiguous and the channels-last-3D memory format (the
predictor uses channels-last), and channels-last under ``torch.compile`` (inductor fuses
the LeakyReLU and BatchNorm passes; its one-off compile time per batch shape is recorded
as ``compile_s``; measured here it helps at batch 64, not reliably at 1–8, so the
predictor stays eager): latency per forward pass, throughput (patterns/s), and the achieved
convolution GFLOP/s (conv FLOPs from :func:`autophase.model.forward_flops` / time), printed
beside the machine's measured sgemm GFLOP/s (float32 matrix product, n = 2048) — the
fraction tells how well the 3D convolutions use the hardware.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--no-compile] [--out PATH]

Writes benchmarks/results/inference-<cpu|gpu>.json via autophase.bench.record.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from autophase.bench.record import median_time, write_record  # noqa: E402
from autophase.model import AutoPhaseNet, NetworkConfig, forward_flops, parameter_count  # noqa: E402

MODELS = {"default": NetworkConfig(), "paper": NetworkConfig(width=32, depth=4)}


def sgemm_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> dict:
    a = torch.rand(n, n, device=device)
    b = torch.rand(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t = median_time(lambda: torch.mm(a, b), repeats=repeats, warmup=1, sync=sync)
    return {"n": n, "gflops": 2 * n ** 3 / t["median_s"] / 1e9, **t}


FORMATS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


def bench_model(name: str, cfg: NetworkConfig, device: torch.device, batches, repeats: int,
                compile: bool = True) -> dict:
    """Per batch size and memory format; ``batches[b]`` also holds the best format's figures."""
    torch.manual_seed(0)
    net = AutoPhaseNet(cfg).to(device).eval()
    flops = forward_flops(AutoPhaseNet(cfg))
    out = {"width": cfg.width, "depth": cfg.depth, "parameters": parameter_count(net), "forward_gflop": flops / 1e9,
           "batches": {}}
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    for b in batches:
        x0 = torch.rand(b, 1, 64, 64, 64, device=device) * 100
        per_format = {}

        def measure(fname: str, model, x, note: str = "", **extra) -> None:
            def fwd():
                with torch.inference_mode():
                    model(x)

            t = median_time(fwd, repeats=repeats, warmup=1, sync=sync)
            s = t["median_s"]
            per_format[fname] = {"latency_s": s, "patterns_per_s": b / s, "conv_gflops": flops * b / s / 1e9,
                                 **extra, **t}
            print(f"  {name:8s} batch {b} {fname:17s}: {s * 1e3:8.1f} ms/pass  {b / s:7.2f} patterns/s  "
                  f"{flops * b / s / 1e9:6.1f} conv GFLOP/s{note}", flush=True)

        for fname, fmt in FORMATS.items():
            net = net.to(memory_format=fmt)
            measure(fname, net, x0.contiguous(memory_format=fmt))
        if compile:
            net = net.to(memory_format=torch.channels_last_3d)
            x = x0.contiguous(memory_format=torch.channels_last_3d)
            cnet = torch.compile(net, dynamic=False)
            t0 = time.perf_counter()
            with torch.inference_mode():
                cnet(x)
            if sync:
                sync()
            compile_s = time.perf_counter() - t0
            measure("compiled", cnet, x, f"  (compiled in {compile_s:.0f} s)", compile_s=compile_s)
        best = min(per_format, key=lambda k: per_format[k]["latency_s"])
        out["batches"][str(b)] = {**per_format[best], "memory_format": best, "formats": per_format}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (about a minute on 2 cores)")
    ap.add_argument("--out", help="record path (default benchmarks/results/inference-<device>.json)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (each compile ≈ 1 min on CPU)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    repeats = 2 if args.quick else 5
    g = sgemm_gflops(dev, repeats=repeats)
    print(f"sgemm (n=2048, {torch.get_num_threads()} threads): {g['gflops']:.1f} GFLOP/s", flush=True)
    res = {"device": str(dev), "threads": torch.get_num_threads(), "sgemm": g, "models": {}}
    for name, cfg in MODELS.items():
        # batch 64 is a throughput figure; the paper-size model's 64-pattern pass
        # (2.3 TFLOP) would take minutes on a CPU, so it runs there on a GPU only
        batches = (1, 8, 64) if (name == "default" or dev.type == "cuda") else (1, 8)
        res["models"][name] = m = bench_model(name, cfg, dev, batches, repeats, compile=not args.no_compile)
        for b, r in m["batches"].items():
            r["fraction_of_sgemm"] = r["conv_gflops"] / g["gflops"]
        best = max(r["fraction_of_sgemm"] for r in m["batches"].values())
        print(f"  {name}: {m['parameters']:,} parameters, {m['forward_gflop']:.2f} GFLOP/forward, "
              f"best {100 * best:.0f} % of sgemm", flush=True)
    path = write_record("inference", res, args.out)
    print(f"bench_inference: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
