"""The LBAE network: a convolutional encoder to ±1 bits and a decoder back to pixels.

Follows Fajtl et al. (ICML 2020): strided 4×4 convolutions with residual 3×3 blocks,
BatchNorm and LeakyReLU(0.02); a linear layer to the latent, tanh, then sign() with a
straight-through gradient. The decoder mirrors it with transposed convolutions (or, where it
must not grow a checkerboard under adversarial training, a resize then a 3×3 convolution) and
ends in a sigmoid. The network knows nothing about files: it maps tensors in [0, 1] to tensors
of ±1.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .architecture import BOTTOM, RESIZE, Architecture, ModelKind, _levels, level_width
from .errors import ModelError

LEAK = 0.02


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(ch),
            nn.LeakyReLU(LEAK),
            nn.Conv2d(ch, ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(ch),
        )
        self.act = nn.LeakyReLU(LEAK)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def conv_bn_act(conv: nn.Module, ch: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(ch), nn.LeakyReLU(LEAK)]


def down_path(arch: Architecture, levels: int) -> list[nn.Module]:
    """Image → features: a 3×3 stem, then per level a 4×4 stride-2 conv and a residual block."""
    layers = conv_bn_act(nn.Conv2d(arch.channels, arch.width, 3, padding=1, bias=False), arch.width)
    for level in range(levels):
        cin, cout = level_width(arch.width, level), level_width(arch.width, level + 1)
        layers += [*conv_bn_act(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False), cout), ResBlock(cout)]
    return layers


class ResizeConv(nn.Module):
    """×2 nearest-neighbour resize, then a 3×3 convolution: every output pixel sees the same
    number of taps, so no checkerboard (Odena et al., Distill 2016)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def upsampler(arch: Architecture, cin: int, cout: int) -> nn.Module:
    if arch.upsample == RESIZE:
        return ResizeConv(cin, cout)
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)


def up_path(arch: Architecture, levels: int) -> list[nn.Module]:
    """Features → pixel logits: ``down_path`` mirrored, each level upsampled as ``arch.upsample`` says."""
    layers: list[nn.Module] = []
    for level in range(levels, 0, -1):
        cin, cout = level_width(arch.width, level), level_width(arch.width, level - 1)
        layers += [ResBlock(cin), *conv_bn_act(upsampler(arch, cin, cout), cout)]
    return [*layers, nn.Conv2d(arch.width, arch.channels, 3, padding=1)]


class SignSTE(torch.autograd.Function):
    """sign() forward (0 maps to +1), identity gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


class Encoder(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        levels = _levels(arch.size)
        self.features = nn.Sequential(*down_path(arch, levels))
        self.to_latent = nn.Linear(level_width(arch.width, levels) * BOTTOM * BOTTOM, arch.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → pre-binarisation latents in (-1, 1)."""
        return torch.tanh(self.to_latent(self.features(x).flatten(1)))


class Decoder(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        """A decoder of ``arch.width`` channels (``LBAE`` passes ``arch.decoder_arch``)."""
        super().__init__()
        self.width, self.upsample = arch.width, arch.upsample
        levels = _levels(arch.size)
        self.bottom_ch = level_width(arch.width, levels)
        self.from_latent = nn.Sequential(
            nn.Linear(arch.bits, self.bottom_ch * BOTTOM * BOTTOM, bias=False),
            nn.BatchNorm1d(self.bottom_ch * BOTTOM * BOTTOM),
            nn.LeakyReLU(LEAK),
        )
        self.pixels = nn.Sequential(*up_path(arch, levels))

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        """±1 codes → logits of pixel values (apply sigmoid for images)."""
        h = self.from_latent(bits).view(-1, self.bottom_ch, BOTTOM, BOTTOM)
        return self.pixels(h)


class LBAE(nn.Module):
    """Latent Bernoulli autoencoder: images in [0, 1] ↔ codes in {-1, +1}^bits."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch.decoder_arch)

    kind = ModelKind.LBAE

    @property
    def code_bits(self) -> int:
        return self.arch.bits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (pixel logits, auxiliary loss = 0); gradients flow through the sign."""
        codes, logits = self.codes_and_logits(x)
        return logits, codes.new_zeros(())

    def codes_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass that also hands back the ±1 codes (for a rate term on them)."""
        codes = SignSTE.apply(self.encoder(x))
        return codes, self.decoder(codes)

    def with_decoder(self, decoder: Decoder) -> LBAE:
        """The same encoder with another decoder (modules shared, not copied), which may be wider
        or upsample otherwise."""
        other = copy.copy(self)
        other._modules = {**self._modules, "decoder": decoder}
        other.arch = self.arch.with_decoder(decoder.width, decoder.upsample)
        return other

    @torch.inference_mode()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images → pixel logits of their decoded codes."""
        return self.decoder(self.encode(x))

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, S, S) in [0, 1] → codes (N, bits) of ±1."""
        return torch.where(self.encoder(x) >= 0, 1.0, -1.0)

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (N, bits) of ±1 → images (N, C, S, S) in [0, 1]."""
        return torch.sigmoid(self.decoder(codes))


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """A copy of ``module`` for inference in which each BatchNorm that directly follows a linear
    layer or a convolution in a Sequential is folded into that layer (its running statistics):
    the same function up to float rounding, one pass over the activations fewer per layer."""
    module = copy.deepcopy(module).eval()
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers: list[nn.Module] = []
        for layer in seq:
            folded = _folded_pair(layers[-1], layer) if layers else None
            if folded is not None:
                layers[-1] = folded
            else:
                layers.append(layer)
        seq._modules = {str(i): layer for i, layer in enumerate(layers)}
    return module


def _folded_pair(layer: nn.Module, norm: nn.Module) -> nn.Module | None:
    if isinstance(norm, nn.BatchNorm2d) and isinstance(layer, ResizeConv):
        folded = copy.copy(layer)
        folded._modules = {"conv": fuse_conv_bn_eval(layer.conv, norm)}
        return folded
    if isinstance(norm, nn.BatchNorm2d) and type(layer) in (nn.Conv2d, nn.ConvTranspose2d):
        return fuse_conv_bn_eval(layer, norm, transpose=isinstance(layer, nn.ConvTranspose2d))
    if isinstance(norm, nn.BatchNorm1d) and type(layer) is nn.Linear:
        return fuse_linear_bn_eval(layer, norm)
    return None


NETWORKS: dict[ModelKind, Callable[[Architecture], nn.Module]] = {ModelKind.LBAE: LBAE}


def register_network(kind: ModelKind, network: Callable[[Architecture], nn.Module]) -> None:
    """Teach model loading another kind of network (the lab registers its baselines)."""
    NETWORKS[kind] = network


def build_network(kind: ModelKind, arch: Architecture) -> nn.Module:
    """An untrained network of this kind; baselines need ``lbaecodec.lab`` imported first."""
    if kind not in NETWORKS:
        raise ModelError(f"{kind} models are built by the lab: import lbaecodec.lab first")
    return NETWORKS[kind](arch)
