"""A rate term for the fidelity stage: the codes' cost under a context prior learned beside them.

The prior has the shipped ``context`` prior's form (logit_i = c_i + Σ_{j<i} W_ij b_j: a MADE of
no hidden units, ``made.py``), so the encoder learns to spend fewer of the bits that the coder
will charge, not of some other model's. Its cost reaches the encoder through the sign's
straight-through gradient: a bit the prior finds surprising is pushed towards the other sign
where the reconstruction does not need it. The prior is trained on the same codes by its own
optimiser, on their cost alone (detached), so the weight of the term moves only the encoder;
the shipped prior is fitted afresh at export, as for any model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import entropy
from . import distributed, made
from .checkpoint import load_optimizer, optimizer_tensors, prefixed, strip

PRIOR_PREFIX, OPTIM_PREFIX = "prior.", "optim."
PRIOR_LR = 1e-3


class RateTerm(torch.nn.Module):
    """Bits per tile of ±1 codes under a learned dense context prior."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.prior = made.Made(torch.zeros(1, bits), hidden=0)
        self.opt = torch.optim.Adam(self.prior.parameters(), lr=PRIOR_LR)
        self.fitted = False  # a prior of zeros gives the encoder no gradient: warm-start it first

    def warm_start(self, codes: np.ndarray) -> None:
        """Start from the context prior that export would fit on the starting network's codes
        (tiles, bits), so that the first gradients to the encoder already point somewhere."""
        fitted = entropy.fit(codes)
        with torch.no_grad():
            self.prior.bias.copy_(torch.from_numpy(fitted.bias / entropy.SCALE))
            self.prior.skip.copy_(torch.from_numpy(fitted.weight / entropy.SCALE))
        self.fitted = True

    @torch.no_grad()
    def bits_of(self, codes: np.ndarray) -> float:
        """Mean bits per tile of (tiles, bits) ±1 codes under the prior as it is."""
        return round(self(torch.from_numpy(codes).float().to(self.prior.bias.device)).item(), 2)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean bits per tile of ``codes``, differentiable towards the codes only."""
        logits = F.linear(codes.float(), self._weight().detach(), self.prior.bias.detach())
        return _bits(logits, codes)

    def fit_step(self, codes: torch.Tensor, world: distributed.World) -> None:
        """One Adam step of the prior on the codes, detached (under torchrun, on all ranks' codes)."""
        codes = codes.detach().float()
        bits = _bits(F.linear(codes, self._weight(), self.prior.bias), codes)
        self.opt.zero_grad(set_to_none=True)
        bits.backward()
        distributed.average_gradients(self.prior.parameters(), world)
        self.opt.step()

    def tensors(self) -> dict[str, torch.Tensor]:
        """The prior's weights and its optimiser's state, for a checkpoint."""
        return {**prefixed(self.prior, PRIOR_PREFIX), **optimizer_tensors(self.opt, OPTIM_PREFIX)}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.prior.load_state_dict(strip(tensors, PRIOR_PREFIX))
        load_optimizer(self.opt, strip(tensors, OPTIM_PREFIX))
        self.fitted = True

    def _weight(self) -> torch.Tensor:
        return self.prior.skip * self.prior.skip_mask


def _bits(logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """−log2 σ(b_i · logit_i) summed over bits, averaged over tiles: written in b itself (not as
    a cross-entropy against b > 0) so that each bit's own cost has a gradient towards its sign."""
    return F.softplus(-codes.float() * logits.float()).sum() / len(codes) / math.log(2)
