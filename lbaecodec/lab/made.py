"""Fitting a hidden-layer context prior (``lbaecodec.hidden_prior``) on training codes.

A float MADE is fitted by maximum likelihood (Adam, cosine learning rate), then rounded to the
integers the coder uses: the shipped prior is the rounded one, so its rate is measured on it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..entropy import SCALE
from ..hidden_prior import OUTER_SCALE, HiddenPrior
from .schedule import cosine, set_lr

BATCH, LR = 512, 2e-3
INT16 = 32767


class Made(torch.nn.Module):
    """logit_i = b_i + Σ_{j<i} W_ij x_j + Σ_{k: d_k ≤ i} V_ik relu(a_k + Σ_{j<d_k} U_kj x_j)."""

    def __init__(self, codes: torch.Tensor, hidden: int) -> None:
        super().__init__()
        n = codes.shape[1]
        self.register_buffer("degree", torch.arange(hidden) * (n - 1) // hidden + 1)  # 1 … n−1, spread evenly
        self.register_buffer("in_mask", (torch.arange(n)[None] < self.degree[:, None]).float())
        self.register_buffer("out_mask", (self.degree[None] <= torch.arange(n)[:, None]).float())
        self.register_buffer("skip_mask", torch.tril(torch.ones(n, n), -1))
        self.bias = torch.nn.Parameter(torch.atanh(codes.mean(0).clamp(-0.999, 0.999)) * 2)
        self.skip = torch.nn.Parameter(torch.zeros(n, n))
        self.inner = torch.nn.Parameter(torch.randn(hidden, n) * 0.02)
        self.inner_bias = torch.nn.Parameter(torch.zeros(hidden))
        self.outer = torch.nn.Parameter(torch.randn(n, hidden) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inner_bias + x @ (self.inner * self.in_mask).T)
        return self.bias + x @ (self.skip * self.skip_mask).T + h @ (self.outer * self.out_mask).T

    def to_prior(self) -> HiddenPrior:
        """The integer prior the coder uses (weights in 1/256 logit units, V in 1/4096 of them)."""

        def integers(t: torch.Tensor, scale: int, limit: int | None = None) -> np.ndarray:
            out = np.round(t.detach().double().numpy() * scale)
            return out if limit is None else out.clip(-limit, limit)

        return HiddenPrior(
            bias=integers(self.bias, SCALE),
            weight=integers(self.skip * self.skip_mask, SCALE, INT16),
            degree=self.degree.numpy(),
            inner=integers(self.inner * self.in_mask, SCALE, INT16),
            inner_bias=integers(self.inner_bias, SCALE),
            outer=integers(self.outer * self.out_mask, OUTER_SCALE, INT16),
        )


def fit(codes: np.ndarray, hidden: int, steps: int, seed: int = 0, batch: int = BATCH, lr: float = LR) -> Made:
    """A float MADE fitted on (tiles, bits) ±1 codes: ``steps`` Adam steps of ``batch`` codes."""
    torch.manual_seed(seed)
    x_all = torch.from_numpy(np.asarray(codes, np.float32))
    made = Made(x_all, hidden)
    opt = torch.optim.Adam(made.parameters(), lr=lr)
    for step in range(steps):
        set_lr(opt, cosine(lr, step / steps, floor=0))
        x = x_all[torch.randint(len(x_all), (batch,))]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(made(x), (x > 0).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return made


def ideal_bits(made: Made, codes: np.ndarray) -> float:
    """The float model's mean ideal code length (bits per tile) of (tiles, bits) ±1 codes."""
    x = torch.from_numpy(np.asarray(codes, np.float32))
    with torch.no_grad():
        nats = torch.nn.functional.binary_cross_entropy_with_logits(made(x), (x > 0).float(), reduction="sum")
    return nats.item() / len(x) / math.log(2)
