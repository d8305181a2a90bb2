"""Codes chosen with the decoder in the loop (``encode --search``): analysis by synthesis.

The encoder maps a tile to its code in one pass; it was trained for the average tile, not for
this one. Starting from its code, each round asks the decoder which bits to flip: the gradient
of the tile's cost J = 10·log10(MSE) + λ·bits through the decoder and the prior ranks the bits
(a first-order guess of what each flip would change), the ``candidates`` best guesses are
decoded and costed exactly, and the tile takes the best flip that lowers J, or all the
improving ones together where that lowers J more. A tile stops when no candidate lowers its J.

λ is in dB per bit: what one bit of file is worth in PSNR. λ = 0 spends bits freely for
fidelity; larger λ gives smaller files. The files are ordinary: a code of ±1 bits coded under
the model's prior, decoded by every reader as before. Each tile is searched on its own (its own
MSE, not the image's), so a tile codes the same alone or in a large image. The search serves
one decoder, the fidelity one unless told otherwise; the other decodes the same file as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .architecture import FIDELITY
from .entropy import SCALE, Prior
from .errors import InputError
from .hidden_prior import OUTER_SCALE, HiddenPrior

if TYPE_CHECKING:  # torch is imported where a search runs
    import torch
    from torch import nn

DEFAULT_LAMBDA = 0.02


@dataclass(frozen=True)
class Search:
    """How ``encode --search`` looks: λ (dB per bit), rounds, candidates decoded per round, and
    the decoder whose pixels it compares with the tile."""

    lam: float = DEFAULT_LAMBDA
    rounds: int = 20
    candidates: int = 8
    decoder: str = FIDELITY

    def __post_init__(self) -> None:
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise InputError(f"--search-lambda {self.lam}: must be a finite number ≥ 0")
        if self.rounds < 1 or self.candidates < 1:
            raise InputError(f"--search {self.rounds} rounds of {self.candidates} candidates: both must be ≥ 1")


def prior_cost(prior: Prior) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function: codes (tiles, bits) of ±1 → each code's ideal length in bits under ``prior``,
    differentiable in the codes (the coder's integer logits as floats, unrounded, unclipped)."""
    import torch
    import torch.nn.functional as F

    def floats(a, unit: float) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32) / unit

    bias = floats(prior.bias, SCALE)
    weight = floats(prior.weight if prior.weight is not None else torch.zeros(prior.bits, prior.bits), SCALE)
    hidden = None
    if isinstance(prior, HiddenPrior):  # its masked arrays: units see earlier bits only
        hidden = floats(prior.inner, SCALE), floats(prior.inner_bias, SCALE), floats(prior.outer, OUTER_SCALE)

    def cost(codes: torch.Tensor) -> torch.Tensor:
        logits = bias + codes @ weight.T
        if hidden is not None:
            inner, inner_bias, outer = hidden
            logits = logits + torch.relu(inner_bias + codes @ inner.T) @ outer.T
        return F.softplus(-codes * logits).sum(1) / math.log(2)

    return cost


def searched_codes(
    decoder: nn.Module, prior: Prior, tiles: torch.Tensor, codes: torch.Tensor, search: Search
) -> torch.Tensor:
    """Tiles (n, C, S, S) in [0, 1] and their encoder's codes (n, bits) of ±1 → the codes the
    search settles on. ``decoder``: codes → pixel logits (in eval mode)."""
    import torch

    cost = prior_cost(prior)

    def tile_cost(c: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = (torch.sigmoid(decoder(c)) - target).pow(2).flatten(1).mean(1) * 255**2
        return 10 * torch.log10(mse.clamp_min(1e-10)) + search.lam * cost(c)

    k = min(search.candidates, codes.shape[1])
    repeated = tiles.repeat_interleave(k, 0)  # each tile once per candidate, the same every round
    for _ in range(search.rounds):
        with torch.enable_grad():
            c = codes.clone().requires_grad_(True)
            now = tile_cost(c, tiles)
            (slope,) = torch.autograd.grad(now.sum(), c)
        with torch.no_grad():
            codes, improved = _best_flips(codes, now.detach(), -2 * codes * slope, tiles, repeated, tile_cost)
        if not improved:
            break
    return codes


def _best_flips(codes, now, guess, tiles, repeated, tile_cost) -> tuple[torch.Tensor, bool]:
    """One round: each tile's best single flip among the k that ``guess`` (the first-order change
    of J) ranks first, k = rows of ``repeated`` (the tiles, each k times) per tile, or all its
    improving ones together where that costs less; tiles with no improving flip keep their code.
    False when no tile improved."""
    import torch

    n = len(codes)
    k = len(repeated) // n
    picks = guess.topk(k, dim=1, largest=False).indices
    flipped = codes.repeat_interleave(k, 0)
    flipped[torch.arange(n * k), picks.flatten()] *= -1
    costs = tile_cost(flipped, repeated).view(n, k)
    best, which = costs.min(1)
    improving = costs < now[:, None]
    if not improving.any():
        return codes, False
    single = flipped.view(n, k, -1)[torch.arange(n), which]
    together = codes.clone()
    together.scatter_(1, picks, torch.where(improving, -1.0, 1.0) * codes.gather(1, picks))
    take_together = (tile_cost(together, tiles) < best) & (improving.sum(1) > 1)
    chosen = torch.where(take_together[:, None], together, single)
    return torch.where((best < now)[:, None], chosen, codes), True
