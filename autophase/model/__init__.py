"""The AutoPhaseNN convolutional network (no physics, no distribution)."""
from .checkpoint import file_sha256, load_model, read_checkpoint, save_checkpoint
from .network import AutoPhaseNet, NetworkConfig, forward_flops, normalize_input, parameter_count

__all__ = ["file_sha256", "load_model", "read_checkpoint", "save_checkpoint", "AutoPhaseNet", "NetworkConfig", "forward_flops", "normalize_input", "parameter_count"]
