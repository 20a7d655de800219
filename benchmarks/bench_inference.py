"""Inference speed of AutoPhaseNN on this machine's CPU (or GPU when present).

For the shipped model (its shape read from ``autophase/models/default.json``) and the
paper-size model (width 32, depth 4), at batch 1 and 8 (and 64), in the contiguous and
the channels-last-3D memory format (the predictor uses channels-last), on a GPU also
under bfloat16 autocast (as training runs), and channels-last under ``torch.compile`` — plain (inductor fuses
the LeakyReLU and BatchNorm passes) and with inductor's *freezing* (weights as constants,
pre-packed for oneDNN, each LeakyReLU fused into its convolution); the one-off compile
time per batch shape is recorded as ``compile_s`` (about a minute on 2 cores, which is why
the command-line predictor stays eager): latency per forward pass, throughput (patterns/s), and the achieved
convolution GFLOP/s (conv FLOPs from :func:`autophase.model.forward_flops` / time), printed
beside the machine's measured GEMM GFLOP/s (matrix product, n = 2048) *in the same
precision* — the fraction tells how well the 3D convolutions use the hardware. Each forward
pass is timed beside one GEMM and the fraction is the median of the pairs' ratios
(:func:`paired_times`), so that the shared machine's drift does not land in it.

Like precision on a GPU: cuDNN runs float32 convolutions on TF32 tensor cores by default
while ``torch.mm`` in float32 does not, so a TF32 convolution against a strict-FP32 sgemm
overstates the fraction several-fold. Every row therefore names its ``precision`` and is
paired with a GEMM of that precision (:func:`precision`, :func:`gemm_operands`):
``fp32`` (TF32 off for both cuDNN and cuBLAS), ``tf32`` (on for both; rows suffixed
``_tf32``) and ``bf16`` (autocast convolutions against a bfloat16 GEMM). On a CPU every row
is ``fp32``.

    .venv/bin/python benchmarks/bench_inference.py [--quick] [--no-compile] [--out PATH]

Writes benchmarks/results/inference-<cpu|gpu>.json via autophase.bench.record.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from autophase.bench.record import median_time, write_record  # noqa: E402
from autophase.model import AutoPhaseNet, NetworkConfig, forward_flops, parameter_count  # noqa: E402

def shipped_network() -> NetworkConfig:
    """The network of the model ``predict`` uses by default (autophase/models/default.json)."""
    import json

    from autophase.predict import DEFAULT_MODEL

    try:
        return NetworkConfig.from_dict(json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["network"])
    except (OSError, KeyError, ValueError):
        return NetworkConfig()


# "default": the shipped model's shape; "paper": the paper's width-32 network
MODELS = {"default": shipped_network(), "paper": NetworkConfig(width=32, depth=4)}


SGEMM_N = 2048


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision(mode: str):
    """Run the block with TF32 on (``"tf32"``) or off (``"fp32"``, ``"bf16"``) for BOTH
    cuDNN convolutions and cuBLAS matrix products; the previous flags are restored."""
    if mode not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {mode!r}")
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def gemm_operands(device: torch.device, n: int = SGEMM_N, mode: str = "fp32"):
    """A zero-argument n×n matrix product (2n³ FLOP) in precision ``mode`` to time.

    ``fp32``/``tf32``: float32 operands (TF32 as :func:`precision` sets it around the
    call); ``bf16``: bfloat16 operands (float32 accumulation, as autocast convolutions).
    """
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    a = torch.rand(n, n, device=device).to(dtype)
    b = torch.rand(n, n, device=device).to(dtype)

    def mm():
        with precision(mode):
            return torch.mm(a, b)

    return mm


def sgemm_operands(device: torch.device, n: int = SGEMM_N):
    """A zero-argument strict float32 n×n matrix product (TF32 off)."""
    return gemm_operands(device, n, "fp32")


def sgemm_gflops(device: torch.device, n: int = SGEMM_N, repeats: int = 5, mode: str = "fp32") -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    t = median_time(gemm_operands(device, n, mode), repeats=repeats, warmup=1, sync=sync)
    return {"n": n, "precision": mode, "gflops": 2 * n ** 3 / t["median_s"] / 1e9, **t}


def paired_times(fwd, ref, repeats: int, sync=None) -> tuple[list[float], list[float]]:
    """(forward seconds, reference seconds): one of each, alternately, ``repeats`` times.

    The development machine is shared and its speed drifts by 2x within minutes (sgemm
    72–132 GFLOP/s in one run here). Timing the reference right beside each forward pass
    and taking the fraction pair by pair cancels that drift; a single sgemm figure at the
    start does not.
    """
    fwd(), ref()  # warm-up (and oneDNN's first-call set-up)
    tf, tr = [], []
    for _ in range(repeats):
        tr.append(median_time(ref, repeats=1, warmup=0, sync=sync)["median_s"])
        tf.append(median_time(fwd, repeats=1, warmup=0, sync=sync)["median_s"])
    return tf, tr


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
    refs = {m: gemm_operands(device, mode=m) for m in (PRECISIONS if device.type == "cuda" else ("fp32",))}
    for b in batches:
        x0 = torch.rand(b, 1, 64, 64, 64, device=device) * 100
        per_format = {}

        def measure(fname: str, model, x, note: str = "", mode: str = "fp32", **extra) -> None:
            def fwd():
                with torch.inference_mode(), precision(mode):
                    model(x)

            tf, tr = paired_times(fwd, refs[mode], repeats, sync)
            s = statistics.median(tf)
            frac = statistics.median(flops * b / f / (2 * SGEMM_N ** 3 / r) for f, r in zip(tf, tr))
            # "sgemm" in the key names is kept for the report's history; the GEMM beside
            # each row is in the row's own precision
            per_format[fname] = {"latency_s": s, "patterns_per_s": b / s, "conv_gflops": flops * b / s / 1e9,
                                 "precision": mode, "reference_gemm": f"{mode} n={SGEMM_N}",
                                 "fraction_of_sgemm": frac,
                                 "sgemm_paired_gflops": statistics.median(2 * SGEMM_N ** 3 / r / 1e9 for r in tr),
                                 **extra, "median_s": s, "min_s": min(tf), "times_s": tf, "sgemm_times_s": tr,
                                 "repeats": repeats, "warmup": 1}
            print(f"  {name:8s} batch {b} {fname:22s}: {s * 1e3:8.1f} ms/pass  {b / s:7.2f} patterns/s  "
                  f"{flops * b / s / 1e9:6.1f} conv GFLOP/s = {100 * frac:3.0f} % of the {mode} GEMM{note}",
                  flush=True)

        for fname, fmt in FORMATS.items():
            net = net.to(memory_format=fmt)
            measure(fname, net, x0.contiguous(memory_format=fmt))
            if device.type == "cuda":  # cuDNN's default for float32: TF32 tensor cores, against a TF32 GEMM
                measure(f"{fname}_tf32", net, x0.contiguous(memory_format=fmt), mode="tf32")
        if device.type == "cuda":
            # what training runs: bfloat16 autocast, channels-last (tensor cores), against
            # a bfloat16 GEMM (the FLOP count is the same)
            xb = x0.contiguous(memory_format=torch.channels_last_3d)

            def bf16(x):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return net(x)

            measure("channels_last_3d_bf16", bf16, xb, mode="bf16")
        if compile:
            net = net.to(memory_format=torch.channels_last_3d)
            x = x0.contiguous(memory_format=torch.channels_last_3d)
            # "compiled": inductor fuses the pointwise passes; "compiled_frozen": inductor
            # with freezing, which also treats the weights as constants, pre-packs them for
            # oneDNN and folds each LeakyReLU into its convolution as a post-op (measured
            # 1.3x over plain compile at batch 8 and 64 on this CPU).
            for fname, freezing in (("compiled", False), ("compiled_frozen", True)):
                torch._dynamo.reset()
                with torch._inductor.config.patch(freezing=freezing):
                    cnet = torch.compile(net, dynamic=False)
                    t0 = time.perf_counter()
                    with torch.inference_mode(), precision("fp32"):
                        cnet(x)  # compiles here, under the patched config
                    if sync:
                        sync()
                    compile_s = time.perf_counter() - t0
                    measure(fname, cnet, x, f"  (compiled in {compile_s:.0f} s)", compile_s=compile_s)
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
    torch.backends.cudnn.benchmark = True  # fixed shapes: cuDNN picks its fastest 3D-conv algorithm once
    repeats = 2 if args.quick else 5
    g = sgemm_gflops(dev, repeats=repeats)
    print(f"sgemm (n=2048, fp32, {torch.get_num_threads()} threads): {g['gflops']:.1f} GFLOP/s", flush=True)
    res = {"device": str(dev), "threads": torch.get_num_threads(), "sgemm": g, "models": {},
           "precision_note": "each row's fraction_of_sgemm is against a GEMM in the row's own precision "
                             "(fp32 = TF32 off for cuDNN and cuBLAS; tf32 = on for both; bf16 = bfloat16 GEMM)"}
    if dev.type == "cuda":
        res["gemm"] = {m: sgemm_gflops(dev, repeats=repeats, mode=m) for m in PRECISIONS}
        print("GEMM by precision: " + ", ".join(f"{m} {v['gflops']:.0f} GFLOP/s" for m, v in res["gemm"].items()),
              flush=True)
    for name, cfg in MODELS.items():
        # batch 64 is a throughput figure; the paper-size model's 64-pattern pass
        # (2.3 TFLOP) would take minutes on a CPU, so it runs there on a GPU only
        batches = (1, 8, 64) if (name == "default" or dev.type == "cuda") else (1, 8)
        res["models"][name] = bench_model(name, cfg, dev, batches, repeats, compile=not args.no_compile)
    g_end = sgemm_gflops(dev, repeats=repeats)
    res["sgemm_end"] = g_end
    print(f"sgemm at the end: {g_end['gflops']:.1f} GFLOP/s (each row's fraction is paired with its own sgemm "
          "timings)", flush=True)
    for name, m in res["models"].items():
        for b, r in m["batches"].items():
            print(f"  {name:8s} batch {b:>2s}: best {r['memory_format']:22s} {r['conv_gflops']:6.1f} conv GFLOP/s, "
                  f"{100 * r['fraction_of_sgemm']:3.0f} % of the {r['precision']} GEMM beside it "
                  f"({r['sgemm_paired_gflops']:.0f})", flush=True)
        best_b = max(m["batches"], key=lambda b: m["batches"][b]["fraction_of_sgemm"])
        print(f"  {name}: {m['parameters']:,} parameters, {m['forward_gflop']:.2f} GFLOP/forward, best "
              f"{100 * m['batches'][best_b]['fraction_of_sgemm']:.0f} % of sgemm (batch {best_b})", flush=True)
    path = write_record("inference", res, args.out)
    print(f"bench_inference: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
