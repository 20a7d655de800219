"""Iterative phase retrieval: ER, HIO, shrink-wrap, schedules, multi-start, batches."""
from .api import PhasingParams, PhasingResult, phase, phase_batch
from .schedule import parse_schedule, total_iterations

__all__ = ["PhasingParams", "PhasingResult", "phase", "phase_batch", "parse_schedule", "total_iterations"]
