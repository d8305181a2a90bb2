"""The paper's comparison models for the bench: a VAE and a VQ-VAE on LBAE's convolutional body.

- VAE: Gaussian latents, the decoder reads the mean; as the paper counts, 32 bits per float
  latent. Its architecture record's ``bits`` holds that count: the paper's sizes are 512 bits
  (16 latents) for MNIST, 4096 (128) for CIFAR-10 and 2048 (64) for CelebA (``PAPER_VAE_BITS``).
- VQ-VAE: an 8×8 grid of 10 codebook indexes (512 codes each, separate codebook per head,
  EMA updates, from vector-quantize-pytorch) = 8·8·10·9 = 5760 bits per image.

Both train with the same loop, data and reconstruction loss as LBAE (``train.py``); their
forward pass returns (pixel logits, auxiliary loss): the KL term or the commitment loss.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from ..architecture import Architecture, ModelKind, level_width
from ..errors import require
from ..network import Decoder, Encoder, conv_bn_act, down_path, register_network, up_path

FLOAT_BITS = 32
PAPER_VAE_BITS = {"mnist": 512, "fashion-mnist": 512, "cifar10": 4096, "celeba": 2048}  # Fashion: as MNIST
LEGACY_VAE_LATENTS = 128  # files from before the sizes above stored LBAE's 600 bits and held 128
VAE_NOISE_STD = 0.1  # Gaussian decoder σ on [0, 1] pixels: sets the weight of KL against MSE
VQ_SIDE, VQ_HEADS, VQ_CODES, VQ_HEAD_DIM = 8, 10, 512, 16
VQ_COMMITMENT = 0.25


class VAE(nn.Module):
    kind = ModelKind.VAE

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.latents = vae_latents(arch)
        self.encoder = Encoder(replace(arch, bits=2 * self.latents))
        self.decoder = Decoder(replace(arch, bits=self.latents))
        # MSE is a per-pixel mean: the ELBO's KL per image, scaled the same way, weighs 2σ²/pixels
        self.kl_weight = 2 * VAE_NOISE_STD**2 / (arch.channels * arch.size**2)

    @property
    def code_bits(self) -> int:
        return FLOAT_BITS * self.latents

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder.to_latent(self.encoder.features(x).flatten(1))
        mean, log_var = h.chunk(2, dim=1)
        return mean, log_var.clamp(-30, 20)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.moments(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean()
        return self.decoder(z), self.kl_weight * kl

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.moments(x)[0])


def vae_latents(arch: Architecture) -> int:
    """Float latents of a VAE whose architecture counts ``bits`` of code (32 per latent)."""
    return arch.bits // FLOAT_BITS if arch.bits % FLOAT_BITS == 0 else LEGACY_VAE_LATENTS


def baseline_architecture(arch: Architecture, kind: ModelKind, dataset: str) -> Architecture:
    """The architecture a baseline of ``kind`` trains with: a VAE codes the paper's latent bits
    for its dataset (CIFAR-10's where the paper has none); a VQ-VAE has a fixed index grid."""
    if kind != ModelKind.VAE:
        return arch
    return replace(arch, bits=PAPER_VAE_BITS.get(dataset, PAPER_VAE_BITS["cifar10"]))


class VQVAE(nn.Module):
    kind = ModelKind.VQVAE

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        VectorQuantize = require("vector_quantize_pytorch", "bench", "The VQ-VAE baseline").VectorQuantize

        self.arch = arch
        levels = int(math.log2(arch.size // VQ_SIDE))
        if VQ_SIDE << levels != arch.size:
            raise ValueError(f"VQ-VAE needs a tile side of {VQ_SIDE}·2^k, got {arch.size}")
        dim = VQ_HEADS * VQ_HEAD_DIM
        top = level_width(arch.width, levels)
        self.encoder = nn.Sequential(*down_path(arch, levels), nn.Conv2d(top, dim, 1))
        self.quantizer = VectorQuantize(
            dim=dim,
            codebook_size=VQ_CODES,
            codebook_dim=VQ_HEAD_DIM,
            heads=VQ_HEADS,
            separate_codebook_per_head=True,
            decay=0.8,
            commitment_weight=VQ_COMMITMENT,
            accept_image_fmap=True,
        )
        self.decoder = nn.Sequential(
            *conv_bn_act(nn.Conv2d(dim, top, 3, padding=1, bias=False), top), *up_path(arch, levels)
        )

    @property
    def code_bits(self) -> int:
        return VQ_SIDE * VQ_SIDE * VQ_HEADS * int(math.log2(VQ_CODES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quantized, _, commitment = self.quantizer(self.encoder(x))
        return self.decoder(quantized), commitment.sum()

    @torch.inference_mode()
    def indexes(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.encoder(x))[1]

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer(self.encoder(x))[0])


register_network(ModelKind.VAE, VAE)
register_network(ModelKind.VQVAE, VQVAE)
