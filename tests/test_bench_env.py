"""What a benchmark record says about the machine: the CPU's family, model and vector ISA
beside its name, since one model name ("AMD EPYC") covered machines 2–4× apart."""
from __future__ import annotations

from autophase.bench.record import _cpu_model, environment

CPUINFO = """processor\t: {n}
vendor_id\t: AuthenticAMD
cpu family\t: {family}
model\t\t: {model}
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx {flags}
"""


def _write(tmp_path, family, model, flags):
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(CPUINFO.format(n=n, family=family, model=model, flags=flags) for n in range(2)))
    return path


def test_cpu_model_names_family_model_and_isa(tmp_path):
    assert _cpu_model(_write(tmp_path, 23, 1, "fma avx2")) == "AMD EPYC (family 23 model 1, AVX2)"
    zen4 = _write(tmp_path, 25, 17, "avx2 avx512f avx512_bf16")
    assert _cpu_model(zen4) == "AMD EPYC (family 25 model 17, AVX-512 + BF16)"
    assert _cpu_model(_write(tmp_path, 6, 143, "avx2 avx512f avx512_bf16 amx_bf16")).endswith("AVX-512 + AMX)")


def test_cpu_model_without_cpuinfo_still_names_something(tmp_path):
    assert _cpu_model(tmp_path / "absent")  # platform's name for the processor or machine


def test_environment_records_this_machine():
    env = environment()
    assert env["cpu_model"] and env["cpu_cores"] >= 1 and "numpy" in env["versions"]
