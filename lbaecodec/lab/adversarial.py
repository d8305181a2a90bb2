"""What the realism decoder is trained against: a patch discriminator and its losses.

The realism decoder reads the same ±1 codes as the fidelity decoder (the encoder is frozen) and
is trained with the reconstruction loss plus an adversarial term, as in VQGAN (Esser et al.
2021): a spectral-norm convolutional discriminator that scores overlapping patches, hinge
losses, and an adaptive weight that scales the adversarial gradient to the size of the
reconstruction gradient at the decoder's last layer. No pretrained network is involved: the FID
that judges the result never enters a loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LEAK = 0.2
MAX_ADAPTIVE_WEIGHT = 1e4


class PatchDiscriminator(nn.Module):
    """Images in [0, 1] → a grid of real/fake logits, one per overlapping patch.

    Two stride-2 convolutions then two 3×3 ones: on a 32×32 tile, an 8×8 grid of logits
    whose receptive fields are 22 pixels wide (texture and edges, not global layout)."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            spectral_norm(nn.Conv2d(channels, width, 4, stride=2, padding=1)),
            nn.LeakyReLU(LEAK),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)),
            nn.LeakyReLU(LEAK),
            spectral_norm(nn.Conv2d(2 * width, 4 * width, 3, padding=1)),
            nn.LeakyReLU(LEAK),
            spectral_norm(nn.Conv2d(4 * width, 1, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x * 2 - 1)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """‖∇ rec‖ / ‖∇ adv‖ at ``last_layer`` (VQGAN's balance): the adversarial term then pulls
    as hard as the reconstruction term whatever their scales."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, MAX_ADAPTIVE_WEIGHT).detach()
