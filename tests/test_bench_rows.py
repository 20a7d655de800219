"""The honest-row helpers of the benchmarks (issue 14): χ² band, peer settings, like precision."""
import importlib.util
from pathlib import Path

import pytest
import torch

from autophase.phasing import PhasingParams

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chi2_below_the_noise_floor_is_over_fitting_not_a_win():
    bp = _load("bench_phasing")
    assert bp.band_verdict(0.78) == "below: over-fitting"
    assert bp.band_verdict(0.9) == bp.band_verdict(1.0) == bp.band_verdict(1.1) == "in band"
    assert bp.band_verdict(1.3) == "above: not converged"


def test_cohere_same_settings_follow_ours_and_its_own_differ():
    bp = _load("bench_phasing")
    p = PhasingParams(schedule="3*(20*ER+160*HIO+20*ER)", shrink_wrap_every=20, sw_threshold=0.2, beta=0.8)
    same = bp.cohere_same(p)
    assert same["algorithm_sequence"] == p.schedule and same["hio_beta"] == 0.8
    assert same["shrink_wrap_threshold"] == 0.2 and same["shrink_wrap_trigger"] == [1, 20]
    assert same["initial_support_area"] == [0.5] * 3
    rec = bp.COHERE_RECOMMENDED
    assert rec["shrink_wrap_threshold"] == 0.1 and rec["shrink_wrap_gauss_sigma"] == 1.0
    with pytest.raises(ValueError, match="no equivalent"):
        bp.cohere_same(PhasingParams(sw_threshold=(0.1, 0.2)))


def test_gemm_reference_has_the_rows_precision():
    bi = _load("bench_inference")
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with bi.precision("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with bi.precision("fp32"):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert bi.gemm_operands(torch.device("cpu"), 8, "bf16")().dtype == torch.bfloat16
    assert bi.gemm_operands(torch.device("cpu"), 8, "fp32")().dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        with bi.precision("fp16"):
            pass
