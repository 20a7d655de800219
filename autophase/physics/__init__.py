"""The X-ray scattering model and the figures of merit, shared by every other floor."""
from .forward import (BraggCDI, crop_object, far_field, far_field_adjoint, intensity, magnitude,
                      pad_object, support_from_amplitude)
from .metrics import (chi2, chi2_free, compare_to_truth, complex_error, free_mask, llk_free,
                      phase_error, poisson_llk, ssim_in_box)

__all__ = [
    "BraggCDI", "crop_object", "far_field", "far_field_adjoint", "intensity", "magnitude",
    "pad_object", "support_from_amplitude", "chi2", "chi2_free", "compare_to_truth",
    "complex_error", "free_mask", "llk_free", "phase_error", "poisson_llk", "ssim_in_box",
]
