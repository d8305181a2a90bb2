"""The learning-rate schedule every trainer here follows: a cosine from the peak down to a floor.

A function of how far the run has got (steps, or seconds of a wall-clock budget), not an
optimizer-bound scheduler, so that a resumed or re-budgeted run picks it up at any point."""

from __future__ import annotations

import math

import torch


def cosine(peak: float, done: float, floor: float = 0.01) -> float:
    """The learning rate ``done`` (0–1, clamped) of the way through: ``peak`` → ``peak × floor``."""
    t = min(max(done, 0.0), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
